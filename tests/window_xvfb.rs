//! The call window, for real, under Xvfb: a caller with a window and a
//! headless listener. The listener sends the test pattern; the caller's own
//! video is a solid blue Y4M file, so a screenshot shows whether the peer's
//! pattern fills the main area and the self view sits in its corner. And a
//! listener's window: what it says while it waits, and that it keeps the
//! reason on screen after the call until a key is pressed. And both windows
//! while a relay holds the link down: "reconnecting...", then the call again.
//!
//! Needs Xvfb, xwd, xdotool and ImageMagick's convert (`scripts/setup.sh`
//! installs them); without them the test fails and says so.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::relay::Relay;
use common::{paired_identities, spawn_caller, spawn_listener};
use vchat::media::{
    read_frame_number, CapturedFrame, Encoder, Fps, FrameContent, Picture, PictureFormat, Quality,
    Y4mRecorder,
};
use vchat::protocol::PixelFormat;
use vchat::ui::compose::{
    fit, layout, pip_rect, Compositor, Notice, Pane, Rect, Scene, View, BACKGROUND, TEXT,
};

/// An Xvfb server on a free display, stopped when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// A 24-bit screen of `size` (e.g. "1280x720").
    fn start(size: &str) -> Xvfb {
        let screen = format!("{size}x24");
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &screen,
                "-nolisten",
                "tcp",
                // An X server resets when its last client leaves, and
                // refuses connections while it does: the readiness probe
                // below (or a screenshot) leaving just as vchat connects
                // made "Failed to open connection to X server".
                "-noreset",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "Xvfb is needed for the window test: run scripts/setup.sh (apt-get install xvfb)",
            );
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("Xvfb reports its display number");
        let number = line.trim();
        assert!(!number.is_empty(), "Xvfb did not start");
        let display = format!(":{number}");
        // Once a client can talk to it (CI once saw vchat refused by a
        // display Xvfb had just reported), polled with a bound.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let answered = Command::new("xdotool")
                .arg("getdisplaygeometry")
                .env("DISPLAY", &display)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if answered {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("Xvfb on {display} exited ({status}) right after starting");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Xvfb on {display} does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Xvfb { child, display }
    }
}

impl Drop for Xvfb {
    /// SIGTERM, so Xvfb removes its lock file and socket (a killed one
    /// leaves them behind for the next server to clear); killed after 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a few frames of solid blue as a Y4M file.
fn blue_y4m(path: &Path, width: u32, height: u32) {
    let rgb = [0u8, 0, 255].repeat((width * height) as usize);
    let picture = Picture::new(width, height, PictureFormat::Rgb24, rgb).unwrap();
    let frame = CapturedFrame {
        captured_at: std::time::Instant::now(),
        sequence: 0,
        content: FrameContent::Picture(picture),
    };
    let mut encoder = Encoder::new();
    let i420 = encoder
        .encode(&frame, PixelFormat::I420, Quality::new(90).unwrap())
        .unwrap();
    let i420 = Picture::new(width, height, PictureFormat::I420, i420.payload.to_vec()).unwrap();
    let mut recorder = Y4mRecorder::create(path, Fps::new(30).unwrap()).unwrap();
    for _ in 0..10 {
        recorder.write(&i420).unwrap();
    }
    recorder.finish().unwrap();
}

/// A screenshot of the window titled `title` as (width, height, RGB bytes),
/// taken with `xwd` and decoded here (XWD is a 100-byte header, an optional
/// colour map, then the pixels).
fn screenshot(display: &str, title: &str) -> (u32, u32, Vec<u8>) {
    try_screenshot(display, title).unwrap_or_else(|e| panic!("xwd: {e}"))
}

/// Like [`screenshot`], or xwd's complaint (e.g. no such window yet).
fn try_screenshot(display: &str, title: &str) -> Result<(u32, u32, Vec<u8>), String> {
    let xwd = Command::new("xwd")
        .args(["-display", display, "-name", title, "-silent"])
        .output()
        .expect("xwd is needed for the window test: apt-get install x11-apps");
    if !xwd.status.success() {
        return Err(String::from_utf8_lossy(&xwd.stderr).into_owned());
    }
    let image = parse_xwd(&xwd.stdout);
    // To look at what a person would see: VCHAT_SCREENSHOT_DIR=/tmp cargo test --test window_xvfb
    if let Some(dir) = std::env::var_os("VCHAT_SCREENSHOT_DIR") {
        let path = Path::new(&dir).join(format!("{}.ppm", title.replace(' ', "_")));
        let mut ppm = format!("P6\n{} {}\n255\n", image.0, image.1).into_bytes();
        ppm.extend_from_slice(&image.2);
        std::fs::write(&path, ppm).unwrap();
    }
    Ok(image)
}

/// Decodes a TrueColor ZPixmap XWD image (what xwd writes for a 24-bit screen).
fn parse_xwd(data: &[u8]) -> (u32, u32, Vec<u8>) {
    let field = |i: usize| u32::from_be_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
    let header_size = field(0) as usize;
    assert_eq!(field(2), 2, "ZPixmap");
    let (width, height) = (field(4), field(5));
    let msb_first = field(7) == 1;
    let bits_per_pixel = field(11);
    let bytes_per_line = field(12) as usize;
    let masks = [field(14), field(15), field(16)];
    let ncolors = field(19) as usize;
    assert_eq!(
        bits_per_pixel, 32,
        "a 24-bit screen stores 32 bits per pixel"
    );
    let pixels = &data[header_size + ncolors * 12..];
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let at = y * bytes_per_line + x * 4;
            let bytes: [u8; 4] = pixels[at..at + 4].try_into().unwrap();
            let v = if msb_first {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            };
            for mask in masks {
                rgb.push(((v & mask) >> mask.trailing_zeros()) as u8);
            }
        }
    }
    (width, height, rgb)
}

/// Sends a key press to the window titled `title` (focusing it first: with
/// no window manager nothing else would).
fn press_key(display: &str, title: &str, key: &str) {
    let status = Command::new("xdotool")
        .env("DISPLAY", display)
        .args([
            "search",
            "--name",
            title,
            "windowfocus",
            "--sync",
            "key",
            key,
        ])
        .status()
        .expect("xdotool is needed for the window test: apt-get install xdotool");
    assert!(status.success(), "xdotool failed");
}

fn pixel(img: &(u32, u32, Vec<u8>), x: u32, y: u32) -> [u8; 3] {
    let i = ((y * img.0 + x) * 3) as usize;
    [img.2[i], img.2[i + 1], img.2[i + 2]]
}

fn crop(img: &(u32, u32, Vec<u8>), r: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity((r.w * r.h * 3) as usize);
    for y in r.y..r.y + r.h {
        let start = ((y * img.0 + r.x) * 3) as usize;
        out.extend_from_slice(&img.2[start..start + (r.w * 3) as usize]);
    }
    out
}

#[test]
fn window_shows_the_peer_large_and_yourself_in_the_corner() {
    // One at a time: run together, about one run in five had a vchat
    // fail to connect to its own, freshly started and answering Xvfb
    // ("Failed to open connection to X server"). The likely cause, an X
    // server resetting as its last client leaves, is now ruled out by
    // `-noreset`; the serialising stays, as a loaded CI machine is where it
    // showed and where it is hard to see.
    let _serial = common::one_at_a_time();
    let xvfb = Xvfb::start("1280x720");
    let (a, b) = paired_identities();
    let blue = b.path().join("blue.y4m");
    blue_y4m(&blue, 320, 240);

    let (mut listener, addr) = spawn_listener(
        a.path(),
        &[
            "--headless",
            "--source",
            "test",
            "--size",
            "640x480",
            "--codec",
            "raw",
        ],
        &[],
    );
    let blue_source = blue.to_str().unwrap();
    let caller_args = ["--source", blue_source, "--codec", "raw", "--stats", "json"];
    let display = [("DISPLAY", xvfb.display.as_str()), ("WAYLAND_DISPLAY", "")];
    let mut caller = spawn_caller(b.path(), &addr, &caller_args, &display);
    // Wait until video has flowed for a while and the key hint has gone.
    for _ in 0..6 {
        caller.wait_for("\"fps_in\"", Duration::from_secs(30));
    }
    let shot = screenshot(&xvfb.display, "vchat - a");
    let (w, h) = (shot.0, shot.1);
    assert!(w >= 320 && h >= 240, "window is {w}x{h}");

    // The peer's 640x480 pattern, letterboxed in the whole window.
    let main = fit(640, 480, Rect { x: 0, y: 0, w, h });
    let main_pixels = crop(&shot, main);
    let main_picture = Picture::new(main.w, main.h, PictureFormat::Rgb24, main_pixels).unwrap();
    let mut distinct = std::collections::HashSet::new();
    for y in (main.y..main.y + main.h).step_by(17) {
        for x in (main.x..main.x + main.w).step_by(23) {
            distinct.insert(pixel(&shot, x, y));
        }
    }
    assert!(
        distinct.len() > 20,
        "main area is not the pattern: {} colours",
        distinct.len()
    );
    drop(main_picture);
    // Outside the picture (pillarbox, right side, above the self view): background.
    if main.x + main.w + 4 < w {
        let bar = pixel(&shot, w - 2, main.y + 4);
        let bg = [
            (BACKGROUND >> 16) as u8,
            (BACKGROUND >> 8) as u8,
            BACKGROUND as u8,
        ];
        assert_eq!(bar, bg, "letterbox bar");
    }

    // Yourself (solid blue, 320x240) in the bottom-right corner.
    let pip = pip_rect(w, h, 320, 240);
    assert!(pip.x > w / 2 && pip.y > h / 2, "{pip:?}");
    for (x, y) in [
        (pip.x + pip.w / 2, pip.y + pip.h / 2),
        (pip.x + 3, pip.y + 3),
        (pip.x + pip.w - 4, pip.y + pip.h - 4),
    ] {
        let [r, g, bl] = pixel(&shot, x, y);
        assert!(
            bl > 200 && r < 60 && g < 60,
            "self view at ({x},{y}) is {r},{g},{bl}"
        );
    }
    // And only there: the centre of the main area is not the blue self view.
    let [r, g, bl] = pixel(&shot, main.x + main.w / 2, main.y + main.h / 2);
    assert!(!(bl > 200 && r < 60 && g < 60), "main area centre is blue");

    // `p` hides the self view: the corner then shows the peer's pattern,
    // and the pattern's machine-readable frame number, along its bottom edge
    // where the self view was, reads back from the screen.
    // Without a window manager, a key sent right after focusing can be
    // lost; the screen is the judge, so press again if nothing changed.
    let is_blue = |[r, g, bl]: [u8; 3]| bl > 200 && r < 60 && g < 60;
    let main_picture = 'attempts: {
        for _ in 0..4 {
            press_key(&xvfb.display, "vchat - a", "p");
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                let shot = screenshot(&xvfb.display, "vchat - a");
                if !is_blue(pixel(&shot, pip.x + pip.w / 2, pip.y + pip.h / 2)) {
                    break 'attempts crop(&shot, main);
                }
            }
        }
        panic!("the self view did not hide after pressing `p`");
    };
    let main_picture = Picture::new(main.w, main.h, PictureFormat::Rgb24, main_picture).unwrap();
    let number = read_frame_number(&main_picture);
    assert!(
        number.is_some(),
        "the peer's frame number is readable in the main area"
    );

    // Ctrl-C hangs up cleanly; both sides exit 0.
    caller.signal("INT");
    let caller = caller.finish(Duration::from_secs(30));
    let listener_done = {
        listener.wait_for("call with", Duration::from_secs(30));
        listener.finish(Duration::from_secs(30))
    };
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(
        listener_done.status.success(),
        "{}",
        listener_done.all_output()
    );
    drop(xvfb);
}

fn is_blue([r, g, b]: [u8; 3]) -> bool {
    b > 200 && r < 60 && g < 60
}

/// Presses `key` in `window` until `done(screenshot of watched)` holds (a
/// key can be lost right after focusing when there is no window manager).
fn press_until(
    display: &str,
    window: &str,
    key: &str,
    watched: &str,
    done: impl Fn(&(u32, u32, Vec<u8>)) -> bool,
) {
    for _ in 0..4 {
        press_key(display, window, key);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if done(&screenshot(display, watched)) {
                return;
            }
        }
    }
    panic!("pressing {key:?} in {window:?} did not change {watched:?} as expected");
}

#[test]
fn camera_off_reaches_the_peer_and_resizing_keeps_the_layout() {
    let _serial = common::one_at_a_time();
    // Room for both windows side by side: xwd reads the screen, so a window
    // covered by another would show the other's pixels.
    let xvfb = Xvfb::start("2000x1200");
    let (a, b) = paired_identities();
    let blue = b.path().join("blue.y4m");
    blue_y4m(&blue, 320, 240);
    let display = [("DISPLAY", xvfb.display.as_str()), ("WAYLAND_DISPLAY", "")];

    // Both sides with a window this time: the listener's is titled "vchat".
    let (mut listener, addr) = spawn_listener(
        a.path(),
        &[
            "--source", "test", "--size", "640x480", "--codec", "raw", "--stats", "json",
        ],
        &display,
    );
    let blue_source = blue.to_str().unwrap();
    let caller_args = ["--source", blue_source, "--codec", "raw", "--stats", "json"];
    let mut caller = spawn_caller(b.path(), &addr, &caller_args, &display);
    for _ in 0..2 {
        caller.wait_for("\"fps_in\"", Duration::from_secs(30));
        listener.wait_for("\"fps_in\"", Duration::from_secs(30));
    }

    let status = Command::new("xdotool")
        .env("DISPLAY", &xvfb.display)
        .args([
            "search",
            "--name",
            "^vchat - a$",
            "windowmove",
            "--sync",
            "1000",
            "0",
        ])
        .status()
        .expect("xdotool");
    assert!(status.success());

    // The listener sees the caller's blue picture large...
    let probe = |shot: &(u32, u32, Vec<u8>)| {
        let main = fit(
            320,
            240,
            Rect {
                x: 0,
                y: 0,
                w: shot.0,
                h: shot.1,
            },
        );
        pixel(shot, main.x + main.w / 2, main.y + main.h / 4)
    };
    // The area the caller's window uncovered shows the listener's pixels
    // only once the listener has repainted (its next frame): poll for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !is_blue(probe(&screenshot(&xvfb.display, "vchat"))) {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener's window does not show the caller's blue picture"
        );
    }
    // ...and when the caller presses v, a "camera off" placeholder instead of
    // a frozen last frame; pressing v again brings the picture back.
    let bg = [
        (BACKGROUND >> 16) as u8,
        (BACKGROUND >> 8) as u8,
        BACKGROUND as u8,
    ];
    press_until(&xvfb.display, "vchat - a", "v", "vchat", |shot| {
        probe(shot) == bg
    });
    press_until(&xvfb.display, "vchat - a", "v", "vchat", |shot| {
        is_blue(probe(shot))
    });

    // Resizing the caller's window keeps the self view in the new corner.
    let status = Command::new("xdotool")
        .env("DISPLAY", &xvfb.display)
        .args([
            "search",
            "--name",
            "^vchat - a$",
            "windowsize",
            "--sync",
            "640",
            "400",
        ])
        .status()
        .expect("xdotool");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shot = screenshot(&xvfb.display, "vchat - a");
        let pip = pip_rect(shot.0, shot.1, 320, 240);
        if (shot.0, shot.1) == (640, 400)
            && is_blue(pixel(&shot, pip.x + pip.w / 2, pip.y + pip.h / 2))
        {
            let main = fit(
                640,
                480,
                Rect {
                    x: 0,
                    y: 0,
                    w: 640,
                    h: 400,
                },
            );
            assert!(!is_blue(pixel(
                &shot,
                main.x + main.w / 2,
                main.y + main.h / 4
            )));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "window did not re-layout at 640x400"
        );
    }

    // q in the caller's window hangs up: the caller, who chose to, exits;
    // the listener's window says the call is over until a key is pressed.
    press_key(&xvfb.display, "vchat - a", "q");
    let caller = caller.finish(Duration::from_secs(30));
    let (_, listener) = wait_for_end_screen(&xvfb.display, "vchat", listener);
    let listener = press_any_key_to_exit(&xvfb.display, "vchat", listener);
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());
    // The summary says how the call ended; the end event comes last.
    assert!(
        caller
            .stdout
            .iter()
            .any(|l| l.contains("\"summary\"") && l.contains("\"end\":\"hung up\"")),
        "{}",
        caller.all_output()
    );
    assert!(
        caller
            .stdout
            .last()
            .unwrap()
            .contains("\"reason\":\"hung up\""),
        "{}",
        caller.all_output()
    );
    drop(xvfb);
}

/// The overlay's text colour as screen bytes.
const TEXT_RGB: [u8; 3] = [(TEXT >> 16) as u8, (TEXT >> 8) as u8, TEXT as u8];

/// Saves `shot` as `NAME.png` in `dir` (and in `VCHAT_SCREENSHOT_DIR` if
/// set, to look at after the run), with ImageMagick's convert.
fn save_png(shot: &(u32, u32, Vec<u8>), dir: &Path, name: &str) -> std::path::PathBuf {
    let ppm_path = dir.join(format!("{name}.ppm"));
    let mut ppm = format!("P6\n{} {}\n255\n", shot.0, shot.1).into_bytes();
    ppm.extend_from_slice(&shot.2);
    std::fs::write(&ppm_path, ppm).unwrap();
    let png = dir.join(format!("{name}.png"));
    let status = Command::new("convert")
        .arg(&ppm_path)
        .arg(&png)
        .status()
        .expect("convert is needed to save screenshots: apt-get install imagemagick");
    assert!(status.success(), "convert {ppm_path:?} {png:?}");
    if let Some(keep) = std::env::var_os("VCHAT_SCREENSHOT_DIR") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&png, Path::new(&keep).join(format!("{name}.png"))).unwrap();
    }
    png
}

/// Whether `shot` is the end screen: everything dimmed to half brightness
/// (no channel above 0x7F) except text, and plenty of text in the middle
/// third of the window, where the reason is drawn large.
fn is_end_screen(shot: &(u32, u32, Vec<u8>)) -> bool {
    let (w, h) = (shot.0, shot.1);
    let all_dimmed = shot
        .2
        .chunks_exact(3)
        .all(|p| p == TEXT_RGB || p.iter().all(|&c| c <= 0x7F));
    let text_in_middle = (h / 3..2 * h / 3)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| pixel(shot, x, y) == TEXT_RGB)
        .count();
    all_dimmed && text_in_middle > 400
}

/// Polls the window titled `title` until it shows the end screen (failing
/// the test after a hang guard), then checks for a second that it stays
/// there and `running` stays alive: the end no longer closes the window.
/// Returns the screenshot.
fn wait_for_end_screen(
    display: &str,
    title: &str,
    mut running: common::Running,
) -> ((u32, u32, Vec<u8>), common::Running) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let shot = loop {
        // The window may not be open yet when a call fails at once.
        let shot = try_screenshot(display, title);
        if let Some(shot) = shot.ok().filter(is_end_screen) {
            break shot;
        }
        if running.child.try_wait().unwrap().is_some() {
            let output = running.finish(Duration::from_secs(10)).all_output();
            panic!("vchat exited instead of showing why the call ended\n{output}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{title:?} does not show the end of the call"
        );
    };
    let watch_until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < watch_until {
        assert!(is_end_screen(&screenshot(display, title)));
        if running.child.try_wait().unwrap().is_some() {
            let output = running.finish(Duration::from_secs(10)).all_output();
            panic!("vchat exited before a key was pressed\n{output}");
        }
    }
    (shot, running)
}

/// Presses space in the window until the process exits (a key sent right
/// after focusing can be lost without a window manager; once the window is
/// gone there is nothing left to press); returns how it ended.
fn press_any_key_to_exit(
    display: &str,
    title: &str,
    mut running: common::Running,
) -> common::Finished {
    for _ in 0..4 {
        let pressed = Command::new("xdotool")
            .env("DISPLAY", display)
            .args([
                "search",
                "--name",
                &format!("^{title}$"),
                "windowfocus",
                "--sync",
                "key",
                "space",
            ])
            .status()
            .expect("xdotool is needed for the window test: apt-get install xdotool");
        if !pressed.success() {
            break; // no such window any more: it closed
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if running.child.try_wait().unwrap().is_some() {
                return running.finish(Duration::from_secs(10));
            }
            // Paces the poll; the process's exit is the condition.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The window is gone (or never reacted): the process must end on its own.
    running.finish(Duration::from_secs(20))
}

#[test]
fn the_listener_window_says_whom_it_waits_for_then_why_the_call_ended() {
    let _serial = common::one_at_a_time();
    let xvfb = Xvfb::start("1280x720");
    let shots = tempfile::tempdir().unwrap();
    let (a, b) = paired_identities();
    let display = [("DISPLAY", xvfb.display.as_str()), ("WAYLAND_DISPLAY", "")];
    let (listener, addr) = spawn_listener(
        a.path(),
        &["--source", "test", "--size", "320x240", "--codec", "raw"],
        &display,
    );

    // Waiting: the big area says whom for and where, exactly as the
    // compositor draws "waiting for b on ADDRESS" in a window this size
    // (compared in the middle rows, away from the overlay, hint and self view).
    let expected_text = format!("waiting for b on {addr}");
    let matches_waiting = |shot: &(u32, u32, Vec<u8>)| {
        let (w, h) = (shot.0, shot.1);
        let scene = Scene {
            main: Pane {
                view: View::Placeholder(&expected_text),
                label: None,
            },
            pip: None,
            overlay: &[],
            hint: None,
            notice: None,
        };
        let mut expected = vec![0u32; (w * h) as usize];
        Compositor::default().render(&mut expected, w, h, &scene);
        let self_view = pip_rect(w, h, 320, 240);
        let mut text_pixels = 0;
        for y in h / 4..3 * h / 4 {
            for x in 0..w {
                if x + 4 >= self_view.x && y + 4 >= self_view.y {
                    continue;
                }
                let e = expected[(y * w + x) as usize];
                let e = [(e >> 16) as u8, (e >> 8) as u8, e as u8];
                if pixel(shot, x, y) != e {
                    return false;
                }
                text_pixels += usize::from(e == TEXT_RGB);
            }
        }
        text_pixels > 400
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let waiting = loop {
        // "listening on" can come before the window is mapped (CI once
        // found no window at the first look): until then, look again.
        let shot = match try_screenshot(&xvfb.display, "vchat") {
            Ok(shot) => shot,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the listener's window never appeared: {e}"
                );
                continue;
            }
        };
        if matches_waiting(&shot) {
            break shot;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the listener's window does not say {expected_text:?}; see {:?}",
            save_png(&shot, shots.path(), "waiting-mismatch")
        );
    };
    save_png(&waiting, shots.path(), "listener-waiting");

    // A headless caller sends 60 frames and hangs up.
    let caller = spawn_caller(
        b.path(),
        &addr,
        &[
            "--headless",
            "--source",
            "test",
            "--size",
            "320x240",
            "--frames",
            "60",
        ],
        &[],
    );
    let caller = caller.finish(Duration::from_secs(30));
    assert!(caller.status.success(), "{}", caller.all_output());

    // The listener's window keeps the reason on screen until a key.
    let (ended, listener) = wait_for_end_screen(&xvfb.display, "vchat", listener);
    save_png(&ended, shots.path(), "listener-ended");
    let listener = press_any_key_to_exit(&xvfb.display, "vchat", listener);
    assert!(listener.status.success(), "{}", listener.all_output());
    drop(xvfb);
}

#[test]
fn a_failed_call_keeps_its_reason_on_screen_even_in_a_narrow_window() {
    let _serial = common::one_at_a_time();
    let xvfb = Xvfb::start("1280x720");
    let shots = tempfile::tempdir().unwrap();
    let (_a, b) = paired_identities();
    // A port bound but not listening: connecting is refused, and no other
    // test can take the port while this socket holds it.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = refusing.local_addr().unwrap().to_string();
    let display = [("DISPLAY", xvfb.display.as_str()), ("WAYLAND_DISPLAY", "")];
    let caller = spawn_caller(b.path(), &addr, &["--source", "test"], &display);

    let (shot, caller) = wait_for_end_screen(&xvfb.display, "vchat - a", caller);
    save_png(&shot, shots.path(), "caller-failed");

    // Narrowed to 320x240, the reason is still drawn, wrapped, in the middle.
    let status = Command::new("xdotool")
        .env("DISPLAY", &xvfb.display)
        .args([
            "search",
            "--name",
            "^vchat - a$",
            "windowsize",
            "--sync",
            "320",
            "240",
        ])
        .status()
        .expect("xdotool");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let narrow = loop {
        let shot = screenshot(&xvfb.display, "vchat - a");
        if (shot.0, shot.1) == (320, 240) && is_end_screen(&shot) {
            break shot;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no end screen at 320x240; see {:?}",
            save_png(&shot, shots.path(), "caller-failed-narrow-mismatch")
        );
    };
    save_png(&narrow, shots.path(), "caller-failed-320x240");

    // Ctrl-C at the terminal ends the end screen too (the window watches
    // for it: once anything has a Ctrl-C handler, the signal no longer ends
    // the process by itself), and a failed call still exits 1, saying why.
    caller.signal("INT");
    let caller = caller.finish(Duration::from_secs(20));
    drop(refusing);
    assert_eq!(caller.status.code(), Some(1), "{}", caller.all_output());
    assert!(
        caller.all_output().contains(&addr),
        "{}",
        caller.all_output()
    );
    drop(xvfb);
}

/// Whether `shot` shows `text` as the notice in the middle of the window,
/// pixel for pixel as the compositor lays it out and draws its letters
/// (the panel behind them shades whatever picture is there, so only the
/// letters are compared).
fn shows_notice(shot: &(u32, u32, Vec<u8>), text: &str) -> bool {
    let (w, h) = (shot.0, shot.1);
    let scene = Scene {
        main: Pane {
            view: View::Placeholder(""),
            label: None,
        },
        pip: None,
        overlay: &[],
        hint: None,
        notice: Some(Notice { text, footer: None }),
    };
    let Some(block) = layout(w, h, &scene).notice.first().cloned() else {
        return false;
    };
    let mut expected = vec![0u32; (w * h) as usize];
    Compositor::default().render(&mut expected, w, h, &scene);
    let r = block.rect;
    let mut letters = 0;
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w {
            let is_letter = expected[(y * w + x) as usize] == TEXT;
            if is_letter != (pixel(shot, x, y) == TEXT_RGB) {
                return false;
            }
            letters += usize::from(is_letter);
        }
    }
    letters > 50
}

/// Screenshots the window titled `title` until `done` holds for one,
/// failing the test after a hang guard (the last screenshot saved in
/// `dir`); returns that screenshot.
fn screenshot_until(
    display: &str,
    title: &str,
    what: &str,
    dir: &Path,
    done: impl Fn(&(u32, u32, Vec<u8>)) -> bool,
) -> (u32, u32, Vec<u8>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shot = screenshot(display, title);
        if done(&shot) {
            return shot;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{title:?} does not show {what}; see {:?}",
            save_png(&shot, dir, "mismatch")
        );
    }
}

#[test]
fn both_windows_say_reconnecting_while_the_link_is_down_then_show_the_call_again() {
    let _serial = common::one_at_a_time();
    // A display each: without a window manager, two windows on one display
    // sit on top of each other and the lower one cannot be screenshot.
    let listener_x = Xvfb::start("1280x720");
    let caller_x = Xvfb::start("1280x720");
    let shots = tempfile::tempdir().unwrap();
    let (a, b) = paired_identities();
    let listener_env = [
        ("DISPLAY", listener_x.display.as_str()),
        ("WAYLAND_DISPLAY", ""),
    ];
    let caller_env = [
        ("DISPLAY", caller_x.display.as_str()),
        ("WAYLAND_DISPLAY", ""),
    ];
    let video = ["--source", "test", "--size", "320x240", "--codec", "raw"];
    let (mut listener, addr) = spawn_listener(a.path(), &video, &listener_env);
    let relay = Relay::start(addr.parse().unwrap());
    let mut caller = spawn_caller(b.path(), &relay.addr.to_string(), &video, &caller_env);
    listener.wait_for("connected to b", Duration::from_secs(30));
    caller.wait_for("connected to a", Duration::from_secs(30));
    let windows = [
        (&listener_x.display, "vchat", "listener"),
        (&caller_x.display, "vchat - a", "caller"),
    ];

    relay.cut_and_hold();
    let reconnecting = "reconnecting...";
    for (display, title, name) in windows {
        let shot = screenshot_until(display, title, reconnecting, shots.path(), |shot| {
            shows_notice(shot, reconnecting)
        });
        save_png(&shot, shots.path(), &format!("{name}-reconnecting"));
    }

    // Back: the notice goes and the peer's picture fills the main area
    // again, undimmed (its left half, clear of the overlay, the hint and
    // the self view, is mostly the pattern's bright bars).
    relay.release();
    let peer_picture_shown = |shot: &(u32, u32, Vec<u8>)| {
        let (w, h) = (shot.0, shot.1);
        let area = (h / 8..3 * h / 4).flat_map(|y| (0..w / 2).map(move |x| (x, y)));
        let (mut bright, mut all) = (0, 0);
        for (x, y) in area {
            let p = pixel(shot, x, y);
            bright += usize::from(p != TEXT_RGB && p.iter().any(|&c| c > 0x7F));
            all += 1;
        }
        bright * 4 > all
    };
    for (display, title, name) in windows {
        let shot = screenshot_until(display, title, "the call again", shots.path(), |shot| {
            !shows_notice(shot, reconnecting) && peer_picture_shown(shot)
        });
        save_png(&shot, shots.path(), &format!("{name}-back"));
    }

    caller.signal("INT");
    let caller = caller.finish(Duration::from_secs(30));
    assert!(caller.status.success(), "{}", caller.all_output());
    let (_, listener) = wait_for_end_screen(&listener_x.display, "vchat", listener);
    let listener = press_any_key_to_exit(&listener_x.display, "vchat", listener);
    assert!(listener.status.success(), "{}", listener.all_output());
    assert_eq!(relay.relayed(), 2, "one call, one reconnect");
    drop((listener_x, caller_x));
}
