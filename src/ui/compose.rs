//! Composing what the window shows: the peer's video large and letterboxed,
//! the self view as a picture-in-picture in the bottom-right corner, and the
//! overlay text. Pure (no window, no clock), so the layout is unit tested and
//! the window code only copies the result to the screen.

use bytes::Bytes;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::text::{scale_for, text_width, Canvas, GLYPH};

/// Background of the letterbox bars and empty areas.
pub const BACKGROUND: u32 = 0x0010_1010;
/// Overlay text colour.
pub const TEXT: u32 = 0x00F0_F0F0;
/// Frame drawn around the self view so it stands out from the peer's video.
pub const PIP_BORDER: u32 = 0x00E0_E0E0;

/// An RGB24 picture ready to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` bytes, R G B, rows top to bottom. Shared, so a
    /// received raw frame is shown from the receive buffer without a copy.
    pub pixels: Bytes,
}

/// A rectangle in window pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The largest rectangle with the source's aspect ratio that fits in `area`,
/// centred (letterboxed or pillarboxed).
pub fn fit(src_w: u32, src_h: u32, area: Rect) -> Rect {
    if src_w == 0 || src_h == 0 || area.w == 0 || area.h == 0 {
        return Rect { w: 0, h: 0, ..area };
    }
    // Compare aspect ratios in integers: src_w/src_h vs area.w/area.h.
    let (w, h) = if src_w as u64 * area.h as u64 > area.w as u64 * src_h as u64 {
        let h = (area.w as u64 * src_h as u64 / src_w as u64) as u32;
        (area.w, h.max(1))
    } else {
        let w = (area.h as u64 * src_w as u64 / src_h as u64) as u32;
        (w.max(1), area.h)
    };
    Rect {
        x: area.x + (area.w - w) / 2,
        y: area.y + (area.h - h) / 2,
        w,
        h,
    }
}

/// Where the self view goes: bottom-right corner, a quarter of the window's
/// width (at least 64 px), aspect ratio kept, with a margin.
pub fn pip_rect(win_w: u32, win_h: u32, src_w: u32, src_h: u32) -> Rect {
    let margin = (win_w.min(win_h) / 40).max(4);
    let box_w = (win_w / 4).max(64).min(win_w.saturating_sub(2 * margin));
    let box_h = (win_h / 3).min(win_h.saturating_sub(2 * margin));
    let inner = fit(
        src_w,
        src_h,
        Rect {
            x: 0,
            y: 0,
            w: box_w,
            h: box_h,
        },
    );
    Rect {
        x: win_w.saturating_sub(margin + inner.w),
        y: win_h.saturating_sub(margin + inner.h),
        w: inner.w,
        h: inner.h,
    }
}

/// What fills an area of the window.
pub enum View<'a> {
    /// A picture, optionally mirrored left-right.
    Picture { image: &'a RgbImage, mirror: bool },
    /// No picture: a dark box with a word ("Camera off", "Connecting...").
    Placeholder(&'a str),
}

/// Everything one redraw shows.
pub struct Scene<'a> {
    /// The large view (normally the peer).
    pub main: View<'a>,
    /// The corner view (normally yourself), if shown.
    pub pip: Option<View<'a>>,
    /// Overlay lines in the top-left corner (name, fingerprint, state, stats).
    pub overlay: &'a [String],
    /// A hint line at the bottom-left (key bindings), if any.
    pub hint: Option<&'a str>,
}

/// Draws scenes, reusing its scaler and scratch buffer between frames.
pub struct Compositor {
    resizer: Resizer,
    scratch: Vec<u8>,
    options: ResizeOptions,
}

impl Default for Compositor {
    fn default() -> Self {
        Compositor {
            resizer: Resizer::new(),
            scratch: Vec::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }
}

impl Compositor {
    /// Renders `scene` into `pixels` (0x00RRGGBB, `width * height`).
    pub fn render(&mut self, pixels: &mut [u32], width: u32, height: u32, scene: &Scene<'_>) {
        let mut canvas = Canvas {
            pixels,
            width,
            height,
        };
        canvas.fill(0, 0, width, height, BACKGROUND);
        let scale = scale_for(width, height);
        let whole = Rect {
            x: 0,
            y: 0,
            w: width,
            h: height,
        };
        match &scene.main {
            View::Picture { image, mirror } => {
                let area = fit(image.width, image.height, whole);
                self.draw_picture(&mut canvas, image, area, *mirror);
            }
            View::Placeholder(word) => centered_word(&mut canvas, whole, word, scale * 2),
        }
        if let Some(pip) = &scene.pip {
            let (src_w, src_h) = match pip {
                View::Picture { image, .. } => (image.width, image.height),
                View::Placeholder(_) => (4, 3),
            };
            let area = pip_rect(width, height, src_w, src_h);
            canvas.fill(
                area.x.saturating_sub(2),
                area.y.saturating_sub(2),
                area.w + 4,
                area.h + 4,
                PIP_BORDER,
            );
            match pip {
                View::Picture { image, mirror } => {
                    self.draw_picture(&mut canvas, image, area, *mirror)
                }
                View::Placeholder(word) => {
                    canvas.fill(area.x, area.y, area.w, area.h, BACKGROUND);
                    centered_word(&mut canvas, area, word, scale);
                }
            }
        }
        let margin = 2 * scale;
        if !scene.overlay.is_empty() {
            canvas.text_panel(margin, margin, scale, scene.overlay, TEXT);
        }
        if let Some(hint) = scene.hint {
            let line_h = (GLYPH + 3) * scale + 8 * scale;
            canvas.text_panel(
                margin,
                height.saturating_sub(line_h + margin),
                scale,
                &[hint.to_owned()],
                TEXT,
            );
        }
    }

    /// Scales `image` into `area` of the canvas.
    fn draw_picture(
        &mut self,
        canvas: &mut Canvas<'_>,
        image: &RgbImage,
        area: Rect,
        mirror: bool,
    ) {
        if area.w == 0 || area.h == 0 {
            return;
        }
        let needed = area.w as usize * area.h as usize * 3;
        self.scratch.resize(needed, 0);
        let scaled = match (
            ImageRef::new(image.width, image.height, &image.pixels, PixelType::U8x3),
            Image::from_slice_u8(area.w, area.h, &mut self.scratch, PixelType::U8x3),
        ) {
            (Ok(src), Ok(mut dst)) => self.resizer.resize(&src, &mut dst, &self.options).is_ok(),
            _ => false,
        };
        if !scaled {
            // A picture whose buffer does not match its size: show nothing
            // rather than garbage (the decoder validates, so this is a bug guard).
            canvas.fill(area.x, area.y, area.w, area.h, BACKGROUND);
            return;
        }
        let row_len = area.w as usize * 3;
        for (row, src) in self.scratch.chunks_exact(row_len).enumerate() {
            let y = area.y as usize + row;
            if y >= canvas.height as usize {
                break;
            }
            let start = y * canvas.width as usize + area.x as usize;
            let Some(dst) = canvas.pixels.get_mut(start..start + area.w as usize) else {
                break;
            };
            let pack = |p: &[u8]| (p[0] as u32) << 16 | (p[1] as u32) << 8 | p[2] as u32;
            if mirror {
                for (d, p) in dst.iter_mut().rev().zip(src.chunks_exact(3)) {
                    *d = pack(p);
                }
            } else {
                for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
                    *d = pack(p);
                }
            }
        }
    }
}

fn centered_word(canvas: &mut Canvas<'_>, area: Rect, word: &str, scale: u32) {
    let mut scale = scale.max(1);
    while scale > 1 && text_width(word, scale) > area.w {
        scale -= 1;
    }
    let w = text_width(word, scale);
    let h = GLYPH * scale;
    let x = area.x + area.w.saturating_sub(w) / 2;
    let y = area.y + area.h.saturating_sub(h) / 2;
    canvas.text(x, y, scale, word, TEXT);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
        RgbImage {
            width: w,
            height: h,
            pixels: rgb.repeat((w * h) as usize).into(),
        }
    }

    #[test]
    fn fit_letterboxes_and_pillarboxes() {
        let area = Rect {
            x: 0,
            y: 0,
            w: 800,
            h: 800,
        };
        assert_eq!(
            fit(1600, 900, area),
            Rect {
                x: 0,
                y: 175,
                w: 800,
                h: 450
            }
        );
        assert_eq!(
            fit(900, 1600, area),
            Rect {
                x: 175,
                y: 0,
                w: 450,
                h: 800
            }
        );
        assert_eq!(fit(0, 10, area).w, 0);
    }

    #[test]
    fn pip_sits_in_the_bottom_right_corner() {
        let r = pip_rect(1280, 720, 640, 480);
        assert!(r.x > 1280 / 2 && r.y > 720 / 2, "{r:?}");
        assert!(r.x + r.w <= 1280 && r.y + r.h <= 720);
        assert!(r.w <= 1280 / 4);
        // Aspect kept (4:3) within a pixel.
        assert!((r.w as i64 * 3 - r.h as i64 * 4).abs() <= 4, "{r:?}");
    }

    #[test]
    fn render_places_peer_large_and_self_in_the_corner() {
        let (w, h) = (640u32, 360u32);
        let peer = solid(320, 180, [255, 0, 0]);
        let me = solid(160, 120, [0, 0, 255]);
        let mut pixels = vec![0u32; (w * h) as usize];
        let scene = Scene {
            main: View::Picture {
                image: &peer,
                mirror: false,
            },
            pip: Some(View::Picture {
                image: &me,
                mirror: true,
            }),
            overlay: &[],
            hint: None,
        };
        Compositor::default().render(&mut pixels, w, h, &scene);
        let at = |x: u32, y: u32| pixels[(y * w + x) as usize];
        assert_eq!(at(w / 2, h / 3), 0xFF0000, "peer fills the centre");
        let pip = pip_rect(w, h, 160, 120);
        assert_eq!(
            at(pip.x + pip.w / 2, pip.y + pip.h / 2),
            0x0000FF,
            "self in corner"
        );
    }

    #[test]
    fn mirror_flips_left_and_right() {
        let image = RgbImage {
            width: 2,
            height: 1,
            pixels: vec![255, 255, 255, 0, 0, 0].into(), // left pixel white
        };
        let mut pixels = vec![0u32; 2];
        let scene = Scene {
            main: View::Picture {
                image: &image,
                mirror: true,
            },
            pip: None,
            overlay: &[],
            hint: None,
        };
        Compositor::default().render(&mut pixels, 2, 1, &scene);
        assert_eq!(pixels, vec![0x000000, 0xFFFFFF]);
    }

    #[test]
    fn a_mismatched_buffer_is_not_drawn() {
        let bad = RgbImage {
            width: 100,
            height: 100,
            pixels: vec![255; 10].into(),
        };
        let mut pixels = vec![0u32; 64 * 64];
        let scene = Scene {
            main: View::Picture {
                image: &bad,
                mirror: false,
            },
            pip: Some(View::Placeholder("Camera off")),
            overlay: &["alice".into()],
            hint: Some("q quit"),
        };
        Compositor::default().render(&mut pixels, 64, 64, &scene);
        assert!(!pixels.contains(&0xFFFFFF));
    }
}
