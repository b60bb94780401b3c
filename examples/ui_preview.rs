//! Shows the call window with generated pictures and no network, to look at
//! the layout, overlay and keys (q/Esc, v, p, s, f, m) without a peer.
//! The window closes by itself after the number of seconds given (default 30).
//!
//! Run with `cargo run --example ui_preview -- 10`.

use std::sync::Arc;
use std::time::Duration;

use vchat::ui::{CallState, DisplayState, RgbImage, UiCommand, WindowLoop};

/// A diagonal colour gradient, so scaling and mirroring are visible.
fn gradient(width: u32, height: u32, tint: [u8; 3]) -> RgbImage {
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let t = ((x + y) * 255 / (width + height)) as u8;
            pixels.extend(tint.iter().map(|&c| ((c as u16 * t as u16) / 255) as u8));
        }
    }
    RgbImage {
        width,
        height,
        pixels: pixels.into(),
    }
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let window = WindowLoop::new(DisplayState::new("bob", "CBAQ-3ID2-JKJW-PLBZ-KXWK"))?;
    let handle = window.handle();
    handle.update(|s| {
        s.state = CallState::Connected;
        s.peer_picture = Some(Arc::new(gradient(1280, 720, [255, 160, 40])));
        s.self_picture = Some(Arc::new(gradient(640, 480, [60, 140, 255])));
        s.stats = vec![
            "in 30.0 fps 12.1 Mbit/s  out 30.0 fps 11.8 Mbit/s".into(),
            "rtt 0.4 ms".into(),
        ];
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let closer = handle.clone();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if let Ok(UiCommand::HangUp) = rx.try_recv() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        closer.close();
    });
    window.run("vchat preview".into(), tx)?;
    Ok(())
}
