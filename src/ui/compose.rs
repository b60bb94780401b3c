//! Composing what the window shows: the peer's video large and letterboxed,
//! the self view as a picture-in-picture in the bottom-right corner, a name
//! on each picture, the overlay text, the key hint, and a notice in the
//! middle when the call is over. Pure (no window, no clock): [`layout`]
//! decides where every piece of text goes so that it fits the window and
//! nothing covers the self view, and unit tests check that; the window code
//! only copies the result to the screen.

use bytes::Bytes;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::text::{
    chars_per_line, ellipsize, line_height, panel_pad, panel_size, scale_for, text_width, wrap,
    wrap_list, Canvas, GLYPH,
};

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
    /// No picture: words centred in a dark box ("Camera off", "waiting for
    /// Bob on ..."), wrapped to the box's width.
    Placeholder(&'a str),
}

/// A view and the name of whom it shows. The two travel together, so when
/// the views are swapped each name stays on its own picture.
pub struct Pane<'a> {
    pub view: View<'a>,
    pub label: Option<&'a str>,
}

/// Words over everything, large in the middle: why the call ended, or that
/// it is reconnecting.
pub struct Notice<'a> {
    pub text: &'a str,
    /// A smaller line under it (how to close the window).
    pub footer: Option<&'a str>,
}

/// Everything one redraw shows.
pub struct Scene<'a> {
    /// The large view (normally the peer).
    pub main: Pane<'a>,
    /// The corner view (normally yourself), if shown.
    pub pip: Option<Pane<'a>>,
    /// Overlay lines in the top-left corner (name, fingerprint, state, stats).
    pub overlay: &'a [String],
    /// A hint at the bottom-left (key bindings), if any.
    pub hint: Option<&'a str>,
    /// A notice in the middle, if any; the pictures are dimmed behind it.
    pub notice: Option<Notice<'a>>,
}

/// Lines of text on a shaded panel: `rect` is the panel, padding included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextBlock {
    pub rect: Rect,
    pub scale: u32,
    pub lines: Vec<String>,
    /// Each line centred in the panel rather than flush left.
    pub centred: bool,
}

impl TextBlock {
    /// A panel for `lines` with its top-left corner at (x, y).
    fn at(x: u32, y: u32, scale: u32, lines: Vec<String>, centred: bool) -> Self {
        let (w, h) = panel_size(&lines, scale);
        TextBlock {
            rect: Rect { x, y, w, h },
            scale,
            lines,
            centred,
        }
    }
}

/// Where everything goes in one redraw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The main picture (letterboxed), or the whole window for a placeholder.
    pub main: Rect,
    /// The self view's picture, inside its border.
    pub pip: Option<Rect>,
    pub overlay: Option<TextBlock>,
    pub hint: Option<TextBlock>,
    pub main_label: Option<TextBlock>,
    pub pip_label: Option<TextBlock>,
    /// The notice's text and its footer.
    pub notice: Vec<TextBlock>,
}

/// The size `view` is laid out with: a placeholder is a 4:3 box.
fn source_size(view: &View<'_>) -> (u32, u32) {
    match view {
        View::Picture { image, .. } => (image.width, image.height),
        View::Placeholder(_) => (4, 3),
    }
}

/// The border drawn around the self view, in pixels.
pub const PIP_BORDER_WIDTH: u32 = 2;

impl Rect {
    /// Whether the two rectangles share any pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }

    /// Whether `other` lies wholly inside this rectangle.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.x + other.w <= self.x + self.w
            && other.y + other.h <= self.y + self.h
    }

    /// This rectangle grown by `by` on every side (clamped at 0).
    fn grown(&self, by: u32) -> Rect {
        Rect {
            x: self.x.saturating_sub(by),
            y: self.y.saturating_sub(by),
            w: self.w + 2 * by,
            h: self.h + 2 * by,
        }
    }
}

/// Decides where every part of `scene` goes in a `width` x `height` window:
/// text is wrapped or shortened to fit, the key hint sits left of (or
/// above) the self view and is left out where there is no room for it,
/// and each name is drawn on its own picture.
pub fn layout(width: u32, height: u32, scene: &Scene<'_>) -> Layout {
    let scale = scale_for(width, height);
    let margin = 2 * scale;
    let whole = Rect {
        x: 0,
        y: 0,
        w: width,
        h: height,
    };
    let main = match &scene.main.view {
        View::Picture { image, .. } => fit(image.width, image.height, whole),
        View::Placeholder(_) => whole,
    };
    let pip = scene.pip.as_ref().map(|pane| {
        let (w, h) = source_size(&pane.view);
        pip_rect(width, height, w, h)
    });
    // What text must not cover: the self view and its border.
    let pip_outer = pip.map(|r| r.grown(PIP_BORDER_WIDTH));

    let overlay = {
        let max = chars_per_line(width.saturating_sub(2 * margin), scale);
        let mut lines: Vec<String> = scene
            .overlay
            .iter()
            .flat_map(|l| wrap_list(l, max))
            .collect();
        // In a small window the overlay stops above the self view: the
        // lines that go are the last (stats), who you talk to stays.
        let bottom = pip_outer.map_or(height, |p| p.y).saturating_sub(margin);
        let room = bottom.saturating_sub(margin + 2 * panel_pad(scale)) / line_height(scale);
        lines.truncate(room as usize);
        (!lines.is_empty() && max > 0).then(|| TextBlock::at(margin, margin, scale, lines, false))
    };
    let top = overlay.as_ref().map_or(0, |o| o.rect.y + o.rect.h);

    let hint = scene
        .hint
        .and_then(|hint| place_hint(hint, width, height, scale, top, pip_outer));

    let main_label = scene.main.label.and_then(|name| {
        // Bottom-left of the main picture, above the hint while it shows,
        // and never reaching under the self view.
        let mut bottom = (main.y + main.h).min(height);
        if let Some(h) = &hint {
            bottom = bottom.min(h.rect.y);
        }
        let mut right = (main.x + main.w).min(width).saturating_sub(margin);
        if let Some(p) = pip_outer {
            if p.y < bottom {
                right = right.min(p.x.saturating_sub(margin));
            }
        }
        let x = main.x + margin;
        let max = chars_per_line(right.saturating_sub(x), scale);
        if max < 2 {
            return None;
        }
        let block = TextBlock::at(0, 0, scale, vec![ellipsize(name, max)], false);
        let y = bottom.checked_sub(margin + block.rect.h)?;
        (y >= top).then_some(TextBlock {
            rect: Rect { x, y, ..block.rect },
            ..block
        })
    });

    let pip_label = match (scene.pip.as_ref().and_then(|p| p.label), pip) {
        (Some(name), Some(area)) => (1..=scale).rev().find_map(|s| {
            let max = chars_per_line(area.w, s);
            let block = TextBlock::at(0, 0, s, vec![ellipsize(name, max)], false);
            (max >= 2 && block.rect.h * 3 <= area.h).then(|| TextBlock {
                rect: Rect {
                    x: area.x,
                    y: area.y + area.h - block.rect.h,
                    ..block.rect
                },
                ..block
            })
        }),
        _ => None,
    };

    let notice = scene
        .notice
        .as_ref()
        .map(|n| place_notice(n, width, height, scale, top))
        .unwrap_or_default();

    Layout {
        main,
        pip,
        overlay,
        hint,
        main_label,
        pip_label,
        notice,
    }
}

/// The key hint at the bottom-left: left of the self view if it fits there
/// (wrapped between keys, at a smaller scale if need be), else above the
/// self view across the window, else not at all. It never covers the self
/// view or the overlay above it.
fn place_hint(
    hint: &str,
    width: u32,
    height: u32,
    scale: u32,
    top: u32,
    pip: Option<Rect>,
) -> Option<TextBlock> {
    let margin = 2 * scale;
    let longest_item = hint.split("  ").map(|i| i.trim().chars().count()).max()?;
    // (right edge, bottom edge) of each region to try, best first.
    let mut regions = vec![match pip {
        Some(p) => (p.x.saturating_sub(margin), height.saturating_sub(margin)),
        None => (width.saturating_sub(margin), height.saturating_sub(margin)),
    }];
    if let Some(p) = pip {
        regions.push((width.saturating_sub(margin), p.y.saturating_sub(margin)));
    }
    for (right, bottom) in regions {
        for s in (1..=scale).rev() {
            let max = chars_per_line(right.saturating_sub(margin), s);
            if max < longest_item {
                continue;
            }
            let lines = wrap_list(hint, max);
            let (_, h) = panel_size(&lines, s);
            match bottom.checked_sub(h) {
                Some(y) if y >= top + margin => {
                    return Some(TextBlock::at(margin, y, s, lines, false));
                }
                _ => continue,
            }
        }
    }
    None
}

/// The notice centred in the window, or lower where the overlay (ending at
/// `top`) leaves no room above it, so who the call was with stays readable:
/// its text as large as fits (twice the overlay's scale at most), wrapped
/// to the window's width, the footer under it at the overlay's scale.
fn place_notice(
    notice: &Notice<'_>,
    width: u32,
    height: u32,
    scale: u32,
    top: u32,
) -> Vec<TextBlock> {
    let margin = 2 * scale;
    let room_w = width.saturating_sub(2 * margin);
    let room_h = height.saturating_sub(top + 2 * margin);
    let footer = notice.footer.map(|f| {
        let s = scale;
        let lines = wrap(f, chars_per_line(room_w, s).max(1));
        (s, lines)
    });
    let footer_h = footer
        .as_ref()
        .map_or(0, |(s, lines)| panel_size(lines, *s).1);
    let mut text = None;
    for s in (1..=2 * scale).rev() {
        let lines = wrap(notice.text, chars_per_line(room_w, s).max(1));
        let (_, h) = panel_size(&lines, s);
        let fits = h + footer_h <= room_h;
        if fits || s == 1 {
            text = Some((s, lines));
            break;
        }
    }
    let mut blocks: Vec<TextBlock> = text
        .into_iter()
        .chain(footer)
        .map(|(s, lines)| {
            let (w, h) = panel_size(&lines, s);
            TextBlock {
                rect: Rect {
                    x: width.saturating_sub(w) / 2,
                    y: 0,
                    w,
                    h,
                },
                scale: s,
                lines,
                centred: true,
            }
        })
        .collect();
    let total: u32 = blocks.iter().map(|b| b.rect.h).sum();
    let mut y = (height.saturating_sub(total) / 2).max(top + margin);
    for block in &mut blocks {
        block.rect.y = y;
        y += block.rect.h;
    }
    blocks
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
        let layout = layout(width, height, scene);
        let mut canvas = Canvas {
            pixels,
            width,
            height,
        };
        canvas.fill(0, 0, width, height, BACKGROUND);
        let scale = scale_for(width, height);
        match &scene.main.view {
            View::Picture { image, mirror } => {
                self.draw_picture(&mut canvas, image, layout.main, *mirror);
            }
            View::Placeholder(words) => centered_words(&mut canvas, layout.main, words, scale * 2),
        }
        if let (Some(pane), Some(area)) = (&scene.pip, layout.pip) {
            let b = PIP_BORDER_WIDTH;
            canvas.fill(
                area.x.saturating_sub(b),
                area.y.saturating_sub(b),
                area.w + 2 * b,
                area.h + 2 * b,
                PIP_BORDER,
            );
            match &pane.view {
                View::Picture { image, mirror } => {
                    self.draw_picture(&mut canvas, image, area, *mirror)
                }
                View::Placeholder(words) => {
                    canvas.fill(area.x, area.y, area.w, area.h, BACKGROUND);
                    centered_words(&mut canvas, area, words, scale);
                }
            }
        }
        if !layout.notice.is_empty() {
            // Dim what was on screen so the notice reads as the news.
            canvas.shade(0, 0, width, height);
        }
        for block in [
            &layout.main_label,
            &layout.pip_label,
            &layout.overlay,
            &layout.hint,
        ]
        .into_iter()
        .flatten()
        {
            draw_block(&mut canvas, block);
        }
        for block in &layout.notice {
            // A second shade: the notice sits on a darker panel than the
            // rest, so what was on screen does not show through its words.
            let r = block.rect;
            canvas.shade(r.x, r.y, r.w, r.h);
            draw_block(&mut canvas, block);
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

/// Draws `block`: a shaded panel, then its lines.
fn draw_block(canvas: &mut Canvas<'_>, block: &TextBlock) {
    let r = block.rect;
    canvas.shade(r.x, r.y, r.w, r.h);
    let pad = panel_pad(block.scale);
    for (i, line) in block.lines.iter().enumerate() {
        let indent = if block.centred {
            (r.w - 2 * pad).saturating_sub(text_width(line, block.scale)) / 2
        } else {
            0
        };
        let y = r.y + pad + i as u32 * line_height(block.scale);
        canvas.text(r.x + pad + indent, y, block.scale, line, TEXT);
    }
}

/// Words centred in `area`, wrapped to its width, at `scale` or smaller
/// until they fit.
fn centered_words(canvas: &mut Canvas<'_>, area: Rect, words: &str, scale: u32) {
    let mut scale = scale.max(1);
    let lines = loop {
        let lines = wrap(words, (area.w / (GLYPH * scale)).max(1) as usize);
        let fits = lines.len() as u32 * line_height(scale) <= area.h;
        if fits || scale == 1 {
            break lines;
        }
        scale -= 1;
    };
    let h = lines.len() as u32 * line_height(scale);
    let top = area.y + area.h.saturating_sub(h) / 2;
    for (i, line) in lines.iter().enumerate() {
        let x = area.x + area.w.saturating_sub(text_width(line, scale)) / 2;
        canvas.text(x, top + i as u32 * line_height(scale), scale, line, TEXT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pane(view: View<'_>) -> Pane<'_> {
        Pane { view, label: None }
    }

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
            main: pane(View::Picture {
                image: &peer,
                mirror: false,
            }),
            pip: Some(pane(View::Picture {
                image: &me,
                mirror: true,
            })),
            overlay: &[],
            hint: None,
            notice: None,
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
            main: pane(View::Picture {
                image: &image,
                mirror: true,
            }),
            pip: None,
            overlay: &[],
            hint: None,
            notice: None,
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
            main: pane(View::Picture {
                image: &bad,
                mirror: false,
            }),
            pip: Some(pane(View::Placeholder("Camera off"))),
            overlay: &["alice".into()],
            hint: Some("q quit"),
            notice: None,
        };
        Compositor::default().render(&mut pixels, 64, 64, &scene);
        assert!(!pixels.contains(&0xFFFFFF));
    }

    /// The key hint the window shows (kept in step by a test in window.rs).
    const HINT: &str = "q hang up  m mute  v camera  p self view  s swap  f fullscreen  r mirror";

    fn overlay() -> Vec<String> {
        vec![
            "Bartholomew  [4OYM-IQUJ-ABCD-EFGH-IJKL]".into(),
            "connected".into(),
            "in 30.0 fps 640x480 jpeg  out 30.0 fps".into(),
            "rtt 12 ms  latency p50 40 ms".into(),
        ]
    }

    /// A call in progress: the peer's 4:3 picture large, yourself in the
    /// corner, both named, the overlay and the hint showing.
    fn call_scene<'a>(peer: &'a RgbImage, me: &'a RgbImage, overlay: &'a [String]) -> Scene<'a> {
        Scene {
            main: Pane {
                view: View::Picture {
                    image: peer,
                    mirror: false,
                },
                label: Some("Bartholomew"),
            },
            pip: Some(Pane {
                view: View::Picture {
                    image: me,
                    mirror: true,
                },
                label: Some("you"),
            }),
            overlay,
            hint: Some(HINT),
            notice: None,
        }
    }

    /// Every block of text is inside the window, its lines fit its panel,
    /// and none covers the self view (or its border).
    fn assert_text_fits(w: u32, h: u32, layout: &Layout) {
        let window = Rect { x: 0, y: 0, w, h };
        let pip = layout.pip.map(|p| p.grown(PIP_BORDER_WIDTH));
        for (what, block) in [
            ("overlay", &layout.overlay),
            ("hint", &layout.hint),
            ("main label", &layout.main_label),
        ] {
            let Some(block) = block else { continue };
            assert!(
                window.contains(&block.rect),
                "{what} {block:?} outside {w}x{h}"
            );
            for line in &block.lines {
                assert!(
                    text_width(line, block.scale) + 2 * panel_pad(block.scale) <= block.rect.w,
                    "{what}: {line:?} wider than its panel"
                );
            }
            if let Some(pip) = pip {
                assert!(
                    !block.rect.overlaps(&pip),
                    "{what} {block:?} covers the self view {pip:?}"
                );
            }
        }
        for block in &layout.notice {
            assert!(
                window.contains(&block.rect),
                "notice {block:?} outside {w}x{h}"
            );
        }
    }

    #[test]
    fn at_960x540_the_hint_is_whole_and_beside_the_self_view() {
        let (peer, me) = (solid(640, 480, [200, 0, 0]), solid(320, 240, [0, 0, 255]));
        let lines = overlay();
        let layout = layout(960, 540, &call_scene(&peer, &me, &lines));
        assert_text_fits(960, 540, &layout);
        let hint = layout.hint.as_ref().expect("room for the hint at 960x540");
        // Nothing of the hint is lost to wrapping.
        assert_eq!(hint.lines.join("  "), HINT);
        assert!(hint.lines.len() > 1, "one line would be clipped: {hint:?}");
        let pip = layout.pip.unwrap();
        assert!(hint.rect.x + hint.rect.w <= pip.x, "{hint:?} {pip:?}");
        // The name on the peer's picture, above the hint, clear of the overlay.
        let label = layout.main_label.as_ref().unwrap();
        assert_eq!(label.lines, vec!["Bartholomew"]);
        assert!(
            layout.main.contains(&label.rect),
            "{label:?} off the picture"
        );
        assert!(!label.rect.overlaps(&hint.rect));
        assert!(!label.rect.overlaps(&layout.overlay.as_ref().unwrap().rect));
        let pip_label = layout.pip_label.as_ref().unwrap();
        assert!(
            pip.contains(&pip_label.rect),
            "{pip_label:?} not on {pip:?}"
        );
        assert_eq!(pip_label.lines, vec!["you"]);
    }

    #[test]
    fn a_narrow_window_wraps_the_fingerprint_and_keeps_the_hint_clear() {
        let (peer, me) = (solid(640, 480, [200, 0, 0]), solid(320, 240, [0, 0, 255]));
        let lines = overlay();
        for (w, h) in [(320, 240), (320, 540), (400, 300), (160, 120), (1920, 1080)] {
            let layout = layout(w, h, &call_scene(&peer, &me, &lines));
            assert_text_fits(w, h, &layout);
            let overlay = layout.overlay.as_ref().unwrap();
            // Every character of the fingerprint is on screen, in order.
            let shown: String = overlay.lines.concat().split_whitespace().collect();
            assert!(
                shown.contains("[4OYM-IQUJ-ABCD-EFGH-IJKL]"),
                "{w}x{h}: {overlay:?}"
            );
            if let Some(hint) = &layout.hint {
                assert_eq!(hint.lines.join("  "), HINT, "{w}x{h}");
                assert!(
                    !hint.rect.overlaps(&overlay.rect),
                    "{w}x{h}: hint over overlay"
                );
            }
        }
        // At 320x240 there is still room for the hint, in smaller pieces.
        let layout = layout(320, 240, &call_scene(&peer, &me, &lines[..2]));
        assert!(layout.hint.is_some(), "{layout:?}");
    }

    #[test]
    fn the_hint_is_drawn_left_of_the_self_view_at_960x540() {
        let (peer, me) = (solid(640, 480, [200, 0, 0]), solid(320, 240, [0, 0, 255]));
        let lines = overlay();
        let scene = call_scene(&peer, &me, &lines);
        let mut pixels = vec![0u32; 960 * 540];
        Compositor::default().render(&mut pixels, 960, 540, &scene);
        let layout = layout(960, 540, &scene);
        let pip = layout.pip.unwrap();
        // The self view is untouched blue, all of it.
        for y in pip.y..pip.y + pip.h {
            for x in pip.x..pip.x + pip.w {
                let p = pixels[(y * 960 + x) as usize];
                if layout
                    .pip_label
                    .as_ref()
                    .is_some_and(|l| l.rect.contains(&Rect { x, y, w: 1, h: 1 }))
                {
                    continue;
                }
                assert_eq!(p, 0x0000FF, "self view pixel ({x},{y})");
            }
        }
        // The hint's text is drawn: text-coloured pixels in its panel.
        let hint = layout.hint.unwrap().rect;
        let lit = (hint.y..hint.y + hint.h)
            .flat_map(|y| (hint.x..hint.x + hint.w).map(move |x| (x, y)))
            .filter(|&(x, y)| pixels[(y * 960 + x) as usize] == TEXT)
            .count();
        assert!(lit > 100, "{lit} text pixels in the hint");
    }

    /// The number of text-coloured pixels inside `r`.
    fn text_pixels(pixels: &[u32], w: u32, r: Rect) -> usize {
        (r.y..r.y + r.h)
            .flat_map(|y| (r.x..r.x + r.w).map(move |x| (x, y)))
            .filter(|&(x, y)| pixels[(y * w + x) as usize] == TEXT)
            .count()
    }

    #[test]
    fn labels_follow_their_pictures_when_swapped() {
        let (peer, me) = (solid(640, 480, [200, 0, 0]), solid(320, 240, [0, 0, 255]));
        let lines = overlay();
        let normal = call_scene(&peer, &me, &lines);
        let Scene { main, pip, .. } = call_scene(&peer, &me, &lines);
        let swapped = Scene {
            main: pip.unwrap(),
            pip: Some(main),
            ..normal
        };
        let layout = layout(960, 540, &swapped);
        assert_eq!(layout.main_label.as_ref().unwrap().lines, vec!["you"]);
        assert_eq!(
            layout.pip_label.as_ref().unwrap().lines,
            vec!["Bartholomew"]
        );
        // The corner now shows the peer's red picture, with its name on it.
        let mut pixels = vec![0u32; 960 * 540];
        Compositor::default().render(&mut pixels, 960, 540, &swapped);
        let pip = layout.pip.unwrap();
        assert_eq!(
            pixels[((pip.y + 4) * 960 + pip.x + pip.w / 2) as usize],
            0xC8_0000
        );
        assert!(text_pixels(&pixels, 960, layout.pip_label.unwrap().rect) > 50);
        assert!(text_pixels(&pixels, 960, layout.main_label.unwrap().rect) > 20);
    }

    #[test]
    fn a_long_name_is_shortened_on_the_self_view() {
        let (peer, me) = (solid(640, 480, [200, 0, 0]), solid(320, 240, [0, 0, 255]));
        let long = "Bartholomew Fitzgerald-Montgomery the Third";
        let scene = Scene {
            main: pane(View::Picture {
                image: &me,
                mirror: true,
            }),
            pip: Some(Pane {
                view: View::Picture {
                    image: &peer,
                    mirror: false,
                },
                label: Some(long),
            }),
            overlay: &[],
            hint: None,
            notice: None,
        };
        let layout = layout(320, 240, &scene);
        let label = layout.pip_label.unwrap();
        assert!(label.lines[0].ends_with("..."), "{label:?}");
        assert!(layout.pip.unwrap().contains(&label.rect));
    }

    #[test]
    fn an_end_notice_is_large_wrapped_and_centred() {
        let reason = "Bob's certificate changed: expected 4OYM-IQUJ-ABCD-EFGH-IJKL \
                      got ZZZZ-YYYY-XXXX-WWWW-VVVV";
        let footer = "press any key or close the window";
        for (w, h) in [(960, 540), (320, 240), (1920, 1080)] {
            let lines = overlay();
            let scene = Scene {
                main: pane(View::Placeholder("")),
                pip: None,
                overlay: &lines[..2],
                hint: None,
                notice: Some(Notice {
                    text: reason,
                    footer: Some(footer),
                }),
            };
            let layout = layout(w, h, &scene);
            assert_text_fits(w, h, &layout);
            let [text, foot] = &layout.notice[..] else {
                panic!("{:?}", layout.notice)
            };
            assert!(
                text.scale > scale_for(w, h) || w < 400,
                "{w}x{h}: not large"
            );
            assert!(text.lines.len() > 1, "{w}x{h}: not wrapped");
            let shown: String = text.lines.concat().split_whitespace().collect();
            let meant: String = reason.split_whitespace().collect();
            assert_eq!(shown, meant);
            assert_eq!(foot.lines.join(" "), footer);
            assert!(
                foot.rect.y >= text.rect.y + text.rect.h,
                "footer under the text"
            );
            // Centred across; in the middle, or just under the overlay
            // where the window is too small for both.
            assert_eq!(text.rect.x, (w - text.rect.w) / 2);
            let overlay = layout.overlay.as_ref().unwrap().rect;
            assert!(
                !text.rect.overlaps(&overlay),
                "{w}x{h}: notice over the overlay"
            );
            assert!(
                text.rect.overlaps(&Rect {
                    x: w / 2,
                    y: h / 2,
                    w: 1,
                    h: 1
                }) || text.rect.y == overlay.y + overlay.h + 2 * scale_for(w, h),
                "{w}x{h}: {text:?}"
            );

            let mut pixels = vec![0u32; (w * h) as usize];
            Compositor::default().render(&mut pixels, w, h, &scene);
            assert!(
                text_pixels(&pixels, w, text.rect) > 100,
                "{w}x{h}: reason not drawn"
            );
            assert!(
                text_pixels(&pixels, w, foot.rect) > 50,
                "{w}x{h}: footer not drawn"
            );
        }
    }
}
