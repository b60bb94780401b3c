//! The synthetic test pattern: a picture people recognise and programs can check.
//!
//! Frame `n` at `width` x `height` is a pure function of those three numbers:
//!
//! ```text
//! ┌──────────────────────────────────────────────┐
//! │ #1234 │ white yellow cyan green magenta red blue │  75% colour bars, with
//! │       │          ■  (box sliding left/right)     │  a box moving over them
//! ├──────────────────────────────────────────────┤
//! │ grey ramp, black to white                    │  shows banding / range errors
//! ├──────────────────────────────────────────────┤
//! │ ▮▯▮▮▯▯▮▯ ... 2 rows x 32 black/white cells   │  machine-readable frame number
//! └──────────────────────────────────────────────┘
//! ```
//!
//! The frame-number code packs 48 bits of the number and a CRC-16 of them into
//! 64 large cells, so a reader rejects rather than misreads a damaged code.
//! Cells are `width/32` pixels wide and about `height/24` tall (square-ish,
//! 20x20 at 640x480): far larger than JPEG's 8x8 blocks, and the reader
//! averages only each cell's centre, so the code survives JPEG at ordinary
//! qualities. Below 32 pixels of width there is no room for the code.

use super::error::MediaError;
use super::picture::{Picture, PictureFormat};

/// Bits of the frame number the code carries; numbers wrap at 2^48 (~300 000 years at 30 fps).
pub const FRAME_NUMBER_BITS: u32 = 48;
const FRAME_NUMBER_MASK: u64 = (1 << FRAME_NUMBER_BITS) - 1;
const CODE_COLUMNS: u32 = 32;
const CODE_ROWS: u32 = 2;

/// SMPTE-style 75% bars: white, yellow, cyan, green, magenta, red, blue.
const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

/// Mean luma below which a cell reads as 0 and above which it reads as 1;
/// anything between is too damaged to trust.
const CELL_BLACK_BELOW: u32 = 80;
const CELL_WHITE_ABOVE: u32 = 175;

/// Frame `frame_number` of the pattern as a new RGB24 picture.
pub fn test_pattern(frame_number: u64, width: u32, height: u32) -> Result<Picture, MediaError> {
    let mut picture = Picture::empty(PictureFormat::Rgb24);
    draw_test_pattern(frame_number, width, height, &mut picture)?;
    Ok(picture)
}

/// Draws frame `frame_number` into `picture` (reshaped to RGB24 `width` x `height`, allocation reused).
pub fn draw_test_pattern(
    frame_number: u64,
    width: u32,
    height: u32,
    picture: &mut Picture,
) -> Result<(), MediaError> {
    picture.reshape(width, height, PictureFormat::Rgb24)?;
    let layout = Layout::new(width, height);
    let mut canvas = Canvas {
        width: width as usize,
        data: picture.data_mut(),
    };

    // Bars: draw one row, then copy it down (rows are identical). Bar edges
    // sit on multiples of 16 pixels where the width allows, so colour edges
    // coincide with 4:2:0 chroma samples and JPEG macroblocks: then I420 and
    // JPEG errors measure the codec, not an unlucky edge inside a block.
    let mut bar = 0;
    for x in 0..width {
        while bar + 1 < BARS.len() && x >= bar_edge(bar + 1, width) {
            bar += 1;
        }
        canvas.set(x, 0, BARS[bar]);
    }
    canvas.repeat_row(0, 1..layout.bars_bottom);

    // Ramp.
    for x in 0..width {
        let level = (x * 255 / (width - 1).max(1)) as u8;
        canvas.set(x, layout.bars_bottom, [level; 3]);
    }
    canvas.repeat_row(layout.bars_bottom, layout.bars_bottom + 1..layout.code_top);

    // Code band.
    canvas.fill_rect(0, layout.code_top, width, height, BLACK);
    if let Some(code) = layout.code {
        let word = code_word(frame_number);
        for (row, column) in cells() {
            let bit = word >> (63 - (row * CODE_COLUMNS + column)) & 1;
            let (left, top) = code.cell_origin(row, column);
            let colour = if bit == 1 { WHITE } else { BLACK };
            canvas.fill_rect(
                left,
                top,
                left + code.cell_width,
                top + code.cell_height,
                colour,
            );
        }
    }

    // The moving box: bounces across the bars, a few pixels per frame.
    // Even sizes and positions keep its edges on 4:2:0 chroma sample boundaries.
    let side = (layout.bars_bottom / 3).max(2) & !1;
    let travel = u64::from(width.saturating_sub(side).max(2) & !1);
    let step = u64::from((width / 64).max(1) * 2);
    let phase = frame_number.wrapping_mul(step) % (2 * travel);
    let left = if phase < travel {
        phase
    } else {
        2 * travel - phase
    } as u32;
    let top = (layout.bars_bottom.saturating_sub(side) / 2) & !1;
    canvas.fill_rect(left, top, left + side, top + side, WHITE);
    let inset = side / 4;
    canvas.fill_rect(
        left + inset,
        top + inset,
        left + side - inset,
        top + side - inset,
        BLACK,
    );

    // The frame number in digits, top left, white on black.
    draw_label(
        &mut canvas,
        frame_number,
        (height / 80).max(1),
        layout.code_top,
    );
    Ok(())
}

/// Reads the frame number from a picture of the pattern (RGB24 or I420), or
/// `None` when the code is missing or damaged (a failed checksum or a cell
/// neither clearly black nor clearly white). Returns the number modulo 2^48.
pub fn read_frame_number(picture: &Picture) -> Option<u64> {
    let layout = Layout::new(picture.width(), picture.height());
    let code = layout.code?;
    let mut word = 0u64;
    for (row, column) in cells() {
        let (left, top) = code.cell_origin(row, column);
        // The centre half of the cell, away from edges that JPEG smears.
        let (x0, x1) = (
            left + code.cell_width / 4,
            left + (code.cell_width * 3).div_ceil(4),
        );
        let (y0, y1) = (
            top + code.cell_height / 4,
            top + (code.cell_height * 3).div_ceil(4),
        );
        let mean = mean_luma(picture, x0..x1.max(x0 + 1), y0..y1.max(y0 + 1));
        let bit = if mean < CELL_BLACK_BELOW {
            0
        } else if mean > CELL_WHITE_ABOVE {
            1
        } else {
            return None;
        };
        word = word << 1 | bit;
    }
    let number = word >> 16;
    (word & 0xFFFF == u64::from(crc16(number))).then_some(number)
}

/// Where bar `index` starts: `index * width / 7` rounded to a multiple of 16
/// (to 2 for pictures too narrow for 16-pixel steps).
fn bar_edge(index: usize, width: u32) -> u32 {
    let exact = index as u32 * width / BARS.len() as u32;
    let grid = if width >= 16 * BARS.len() as u32 * 2 {
        16
    } else {
        2
    };
    (exact + grid / 2) / grid * grid
}

fn cells() -> impl Iterator<Item = (u32, u32)> {
    (0..CODE_ROWS).flat_map(|row| (0..CODE_COLUMNS).map(move |column| (row, column)))
}

/// The 64 bits drawn: 48 bits of frame number, then their CRC-16.
fn code_word(frame_number: u64) -> u64 {
    let number = frame_number & FRAME_NUMBER_MASK;
    number << 16 | u64::from(crc16(number))
}

/// CRC-16/CCITT-FALSE over the 6 big-endian bytes of a 48-bit number. Its
/// non-zero start value means an all-black band does not read as frame 0.
fn crc16(number: u64) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for byte in &number.to_be_bytes()[2..] {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                crc << 1 ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn mean_luma(picture: &Picture, xs: std::ops::Range<u32>, ys: std::ops::Range<u32>) -> u32 {
    let width = picture.width() as usize;
    let mut sum = 0u64;
    let mut count = 0u64;
    for y in ys.clone() {
        for x in xs.clone() {
            let index = y as usize * width + x as usize;
            let luma = match picture.format() {
                PictureFormat::Rgb24 => {
                    let pixel = &picture.data()[index * 3..index * 3 + 3];
                    (77 * u32::from(pixel[0])
                        + 150 * u32::from(pixel[1])
                        + 29 * u32::from(pixel[2]))
                        >> 8
                }
                // Limited-range Y' (16..=235) is close enough to the thresholds' scale.
                PictureFormat::I420 => u32::from(picture.data()[index]),
            };
            sum += u64::from(luma);
            count += 1;
        }
    }
    (sum / count.max(1)) as u32
}

/// Where each part of the pattern goes for a given size.
struct Layout {
    bars_bottom: u32,
    code_top: u32,
    code: Option<CodeLayout>,
}

#[derive(Clone, Copy)]
struct CodeLayout {
    left: u32,
    top: u32,
    cell_width: u32,
    cell_height: u32,
}

impl CodeLayout {
    fn cell_origin(self, row: u32, column: u32) -> (u32, u32) {
        (
            self.left + column * self.cell_width,
            self.top + row * self.cell_height,
        )
    }
}

impl Layout {
    fn new(width: u32, height: u32) -> Layout {
        let cell_width = width / CODE_COLUMNS;
        let cell_height = (height / 24).clamp(1, cell_width.max(1));
        let code = (cell_width > 0 && height >= cell_height * CODE_ROWS).then(|| CodeLayout {
            left: (width - cell_width * CODE_COLUMNS) / 2,
            top: height - cell_height * CODE_ROWS,
            cell_width,
            cell_height,
        });
        let code_top = code.map_or(height, |code| code.top);
        // Bars take two thirds of what is above the code, the ramp the rest.
        let bars_bottom = (code_top * 2 / 3).max(1);
        Layout {
            bars_bottom,
            code_top,
            code,
        }
    }
}

/// RGB24 pixel writes with clipping, so drawing near edges never panics.
struct Canvas<'a> {
    width: usize,
    data: &'a mut [u8],
}

impl Canvas<'_> {
    fn height(&self) -> usize {
        self.data.len() / (self.width * 3)
    }

    fn set(&mut self, x: u32, y: u32, colour: [u8; 3]) {
        let (x, y) = (x as usize, y as usize);
        if x < self.width && y < self.height() {
            let index = (y * self.width + x) * 3;
            self.data[index..index + 3].copy_from_slice(&colour);
        }
    }

    fn fill_rect(&mut self, x0: u32, y0: u32, x1: u32, y1: u32, colour: [u8; 3]) {
        let x1 = (x1 as usize).min(self.width);
        let y1 = (y1 as usize).min(self.height());
        for y in y0 as usize..y1 {
            let row = &mut self.data[y * self.width * 3..(y + 1) * self.width * 3];
            for x in x0 as usize..x1 {
                row[x * 3..x * 3 + 3].copy_from_slice(&colour);
            }
        }
    }

    fn repeat_row(&mut self, source_row: u32, rows: std::ops::Range<u32>) {
        let row_len = self.width * 3;
        let start = source_row as usize * row_len;
        for y in rows {
            let destination = y as usize * row_len;
            if destination + row_len <= self.data.len() {
                self.data.copy_within(start..start + row_len, destination);
            }
        }
    }
}

/// 3x5 glyphs for '#' and 0-9, one row per byte, bit 2 = left column.
const HASH_GLYPH: [u8; 5] = [0b101, 0b111, 0b101, 0b111, 0b101];
const DIGIT_GLYPHS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// Draws "#<number>" at the top left, never below `bottom` (the code band).
fn draw_label(canvas: &mut Canvas<'_>, frame_number: u64, scale: u32, bottom: u32) {
    let digits = frame_number.to_string();
    let glyphs: Vec<&[u8; 5]> = std::iter::once(&HASH_GLYPH)
        .chain(
            digits
                .bytes()
                .map(|digit| &DIGIT_GLYPHS[usize::from(digit - b'0')]),
        )
        .collect();
    let advance = 4 * scale;
    let margin = scale * 2;
    // The black box's edges on the 16-pixel grid, like the bars' (see there).
    let label_width = (glyphs.len() as u32 * advance + margin * 2 - scale).next_multiple_of(16);
    let label_height = (5 * scale + margin * 2).next_multiple_of(16).min(bottom);
    canvas.fill_rect(0, 0, label_width, label_height, BLACK);
    for (index, glyph) in glyphs.iter().enumerate() {
        let left = margin + index as u32 * advance;
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..3 {
                if bits >> (2 - column) & 1 == 1 {
                    let x = left + column * scale;
                    let y = margin + row as u32 * scale;
                    canvas.fill_rect(x, y, x + scale, (y + scale).min(bottom), WHITE);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_number_reads_back_exactly() {
        for (width, height) in [(640, 480), (32, 16), (33, 17), (1920, 1080), (160, 120)] {
            for number in [0, 1, 29, 255, 65_536, 123_456_789, FRAME_NUMBER_MASK] {
                let picture = test_pattern(number, width, height).unwrap();
                assert_eq!(
                    read_frame_number(&picture),
                    Some(number),
                    "{width}x{height} #{number}"
                );
            }
        }
    }

    #[test]
    fn numbers_wrap_at_48_bits() {
        let picture = test_pattern((1 << 48) + 7, 64, 32).unwrap();
        assert_eq!(read_frame_number(&picture), Some(7));
    }

    #[test]
    fn any_size_draws_without_panicking() {
        for (width, height) in [(1, 1), (2, 2), (31, 1), (1, 40), (40, 1), (33, 2), (7, 3)] {
            let picture = test_pattern(9, width, height).unwrap();
            assert_eq!(picture.data().len(), (width * height * 3) as usize);
            let _ = read_frame_number(&picture);
        }
    }

    #[test]
    fn too_narrow_for_a_code() {
        let picture = test_pattern(5, 16, 16).unwrap();
        assert_eq!(read_frame_number(&picture), None);
    }

    #[test]
    fn deterministic_and_moving() {
        let a = test_pattern(10, 320, 240).unwrap();
        let b = test_pattern(10, 320, 240).unwrap();
        let c = test_pattern(11, 320, 240).unwrap();
        assert_eq!(a, b);
        // Frames differ in more than the code and label: the box moved.
        let bars_rows = 100 * 320 * 3;
        assert_ne!(a.data()[..bars_rows], c.data()[..bars_rows]);
    }

    #[test]
    fn damaged_code_is_rejected_not_misread() {
        let mut picture = test_pattern(42, 320, 240).unwrap();
        // Paint the code band grey: every cell becomes ambiguous.
        let band_start = (240 - 2 * 10) * 320 * 3;
        picture.data_mut()[band_start..].fill(128);
        assert_eq!(read_frame_number(&picture), None);

        // Flip one cell cleanly: the checksum catches it.
        let mut picture = test_pattern(42, 320, 240).unwrap();
        let layout = Layout::new(320, 240).code.unwrap();
        let (left, top) = layout.cell_origin(0, 31);
        let current = picture.data()[((top * 320 + left) * 3) as usize];
        let flipped = if current > 128 { BLACK } else { WHITE };
        let mut canvas = Canvas {
            width: 320,
            data: picture.data_mut(),
        };
        canvas.fill_rect(
            left,
            top,
            left + layout.cell_width,
            top + layout.cell_height,
            flipped,
        );
        assert_eq!(read_frame_number(&picture), None);
    }

    #[test]
    fn all_black_band_is_not_frame_zero() {
        assert_ne!(crc16(0), 0);
    }
}
