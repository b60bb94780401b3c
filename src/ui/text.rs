//! Drawing into the window's 0x00RRGGBB framebuffer: filled and shaded boxes,
//! and overlay text in the public-domain 8x8 bitmap font, scaled by whole
//! pixels so it stays crisp and readable at any window size without a
//! font-rendering stack.

use font8x8::legacy::BASIC_LEGACY;

/// Width and height of one glyph cell before scaling.
pub const GLYPH: u32 = 8;

/// A mutable view of the window's pixels, row-major, `width` pixels per row.
pub struct Canvas<'a> {
    pub pixels: &'a mut [u32],
    pub width: u32,
    pub height: u32,
}

impl Canvas<'_> {
    /// The pixel indices of one row of a rectangle, clipped to the canvas.
    fn span(&self, x: u32, y: u32, w: u32) -> Option<std::ops::Range<usize>> {
        if y >= self.height || x >= self.width {
            return None;
        }
        let x_end = x.saturating_add(w).min(self.width);
        let row = y as usize * self.width as usize;
        Some(row + x as usize..row + x_end as usize)
    }

    /// Fills a rectangle (clipped to the canvas).
    pub fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, color: u32) {
        for row in y..y.saturating_add(h).min(self.height) {
            if let Some(range) = self.span(x, row, w) {
                self.pixels[range].fill(color);
            }
        }
    }

    /// Darkens a rectangle to half brightness so text over video stays legible.
    pub fn shade(&mut self, x: u32, y: u32, w: u32, h: u32) {
        for row in y..y.saturating_add(h).min(self.height) {
            if let Some(range) = self.span(x, row, w) {
                for p in &mut self.pixels[range] {
                    *p = (*p >> 1) & 0x007F_7F7F;
                }
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel
    /// `scale` screen pixels wide. Characters outside ASCII show as '?'.
    pub fn text(&mut self, x: u32, y: u32, scale: u32, text: &str, color: u32) {
        let scale = scale.max(1);
        for (i, ch) in text.chars().enumerate() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                '?' as usize
            };
            let glyph = BASIC_LEGACY.get(code).copied().unwrap_or([0; 8]);
            let cell_x = x.saturating_add(i as u32 * GLYPH * scale);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..GLYPH {
                    // Bit 0 is the leftmost pixel of the row.
                    if bits & (1 << col) != 0 {
                        self.fill(
                            cell_x.saturating_add(col * scale),
                            y.saturating_add(row as u32 * scale),
                            scale,
                            scale,
                            color,
                        );
                    }
                }
            }
        }
    }

    /// Draws lines of text on a shaded panel at (x, y); returns the panel's height.
    pub fn text_panel(&mut self, x: u32, y: u32, scale: u32, lines: &[String], color: u32) -> u32 {
        let pad = 4 * scale;
        let line_h = (GLYPH + 3) * scale;
        let width = lines
            .iter()
            .map(|l| text_width(l, scale))
            .max()
            .unwrap_or(0)
            + 2 * pad;
        let height = lines.len() as u32 * line_h + 2 * pad;
        self.shade(x, y, width, height);
        for (i, line) in lines.iter().enumerate() {
            self.text(x + pad, y + pad + i as u32 * line_h, scale, line, color);
        }
        height
    }
}

/// Width in pixels of `text` at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * GLYPH * scale.max(1)
}

/// The text scale for a window: grows by one font pixel per 400 window pixels
/// of the shorter side (so the overlay keeps its proportion as the window
/// grows), starting from the font's native size in tiny windows.
pub fn scale_for(width: u32, height: u32) -> u32 {
    width.min(height) / 400 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_exactly_the_glyph_pixels() {
        let mut pixels = vec![0u32; 16 * 8];
        let mut canvas = Canvas {
            pixels: &mut pixels,
            width: 16,
            height: 8,
        };
        canvas.text(0, 0, 1, "I", 0xFFFFFF);
        let lit = pixels.iter().filter(|&&p| p == 0xFFFFFF).count() as u32;
        let expected: u32 = BASIC_LEGACY['I' as usize]
            .iter()
            .map(|b| b.count_ones())
            .sum();
        assert!(expected > 0);
        assert_eq!(lit, expected);
        for row in 0..8 {
            assert!(pixels[row * 16 + 8..row * 16 + 16].iter().all(|&p| p == 0));
        }
    }

    #[test]
    fn drawing_is_clipped_to_the_canvas() {
        let mut pixels = vec![0u32; 10 * 10];
        let mut canvas = Canvas {
            pixels: &mut pixels,
            width: 10,
            height: 10,
        };
        canvas.text(5, 5, 4, "WWW", 1);
        canvas.fill(8, 8, 100, 100, 2);
        canvas.shade(0, 0, 1000, 1000);
        canvas.text_panel(9, 9, 3, &["long line of text".into()], 3);
        assert_eq!(pixels.len(), 100);
    }

    #[test]
    fn scale_grows_with_the_window() {
        assert_eq!(scale_for(320, 240), 1);
        assert_eq!(scale_for(960, 540), 2);
        assert_eq!(scale_for(1920, 1080), 3);
        assert_eq!(scale_for(3840, 2160), 6);
    }
}
