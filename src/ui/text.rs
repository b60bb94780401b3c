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
        let pad = panel_pad(scale);
        let line_h = line_height(scale);
        let (width, height) = panel_size(lines, scale);
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

/// Splits `text` into lines of at most `max_chars` characters. Text that
/// fits stays one line as it is; otherwise it breaks at spaces, and a word
/// too long for a line (a fingerprint, an address) breaks after a `-` where
/// it can, else between characters, so nothing is ever cut off.
pub fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let words = text.split(' ').filter(|w| !w.is_empty());
    wrap_items(words, " ", text, max_chars, break_word)
}

/// Like [`wrap`], for a list whose items are joined by two or more spaces
/// (the key hint, the stats): lines break between items first, so a key
/// stays with its word and a figure with its unit; an item too long for a
/// line is wrapped on its own.
pub fn wrap_list(text: &str, max_chars: usize) -> Vec<String> {
    let items = text.split("  ").map(str::trim).filter(|i| !i.is_empty());
    wrap_items(items, "  ", text, max_chars, wrap)
}

fn wrap_items<'a>(
    items: impl Iterator<Item = &'a str>,
    separator: &str,
    whole: &str,
    max_chars: usize,
    split_long: fn(&str, usize) -> Vec<String>,
) -> Vec<String> {
    let max_chars = max_chars.max(1);
    if whole.chars().count() <= max_chars {
        return vec![whole.to_owned()];
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    for item in items {
        let pieces = if item.chars().count() > max_chars {
            split_long(item, max_chars)
        } else {
            vec![item.to_owned()]
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            let joined = line.chars().count() + separator.len() + piece.chars().count();
            // The pieces of a broken word each start a line: joining them
            // with the separator would put a space inside the word.
            if i == 0 && !line.is_empty() && joined <= max_chars {
                line.push_str(separator);
                line.push_str(&piece);
            } else {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                line = piece;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `word` in pieces of at most `max_chars`, preferring breaks after a `-`.
fn break_word(word: &str, max_chars: usize) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    while chars.len() - start > max_chars {
        let window = &chars[start..start + max_chars];
        let cut = match window.iter().rposition(|&c| c == '-') {
            Some(dash) if dash > 0 => start + dash + 1,
            _ => start + max_chars,
        };
        pieces.push(chars[start..cut].iter().collect());
        start = cut;
    }
    pieces.push(chars[start..].iter().collect());
    pieces
}

/// `text` cut to at most `max_chars` characters, ending in "..." when cut
/// (for a name on a picture, where one line is all there is room for).
pub fn ellipsize(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    if max_chars < 4 {
        return text.chars().take(max_chars).collect();
    }
    let mut cut: String = text.chars().take(max_chars - 3).collect();
    cut.push_str("...");
    cut
}

/// Padding inside a text panel, at `scale`.
pub fn panel_pad(scale: u32) -> u32 {
    4 * scale.max(1)
}

/// Height of one line of text in a panel, at `scale`.
pub fn line_height(scale: u32) -> u32 {
    (GLYPH + 3) * scale.max(1)
}

/// The size of the panel [`Canvas::text_panel`] draws for `lines`.
pub fn panel_size(lines: &[String], scale: u32) -> (u32, u32) {
    let widest = lines
        .iter()
        .map(|l| text_width(l, scale))
        .max()
        .unwrap_or(0);
    (
        widest + 2 * panel_pad(scale),
        lines.len() as u32 * line_height(scale) + 2 * panel_pad(scale),
    )
}

/// How many characters fit on one line of a panel `panel_width` wide.
pub fn chars_per_line(panel_width: u32, scale: u32) -> usize {
    (panel_width.saturating_sub(2 * panel_pad(scale)) / (GLYPH * scale.max(1))) as usize
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

    #[test]
    fn wrap_breaks_at_spaces_then_dashes_and_never_loses_text() {
        assert_eq!(wrap("fits as is", 20), vec!["fits as is"]);
        assert_eq!(
            wrap("Bob hung up: see you tomorrow", 12),
            vec!["Bob hung up:", "see you", "tomorrow"]
        );
        let fingerprint = "[4OYM-IQUJ-ABCD-EFGH-IJKL]";
        let lines = wrap(&format!("Alice  {fingerprint}"), 12);
        assert_eq!(lines, vec!["Alice", "[4OYM-IQUJ-", "ABCD-EFGH-", "IJKL]"]);
        assert!(lines.iter().all(|l| l.chars().count() <= 12));
        assert_eq!(
            lines.concat().replace(' ', ""),
            format!("Alice{fingerprint}")
        );
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
    }

    #[test]
    fn wrap_list_keeps_each_key_with_its_word() {
        let hint = "q hang up  v camera  p self view";
        assert_eq!(wrap_list(hint, 40), vec![hint]);
        assert_eq!(
            wrap_list(hint, 20),
            vec!["q hang up  v camera", "p self view"]
        );
        // Stats: figures stay with their units where a group fits a line.
        assert_eq!(
            wrap_list("out 30.0 fps 55.3 Mbit/s   in 30.0 fps", 26),
            vec!["out 30.0 fps 55.3 Mbit/s", "in 30.0 fps"]
        );
        assert_eq!(
            wrap_list("out 30.0 fps 55.3 Mbit/s", 12),
            vec!["out 30.0 fps", "55.3 Mbit/s"]
        );
    }

    #[test]
    fn ellipsize_marks_a_cut() {
        assert_eq!(ellipsize("Bob", 3), "Bob");
        assert_eq!(ellipsize("Bartholomew", 8), "Barth...");
        assert_eq!(ellipsize("Bartholomew", 2), "Ba");
    }
}
