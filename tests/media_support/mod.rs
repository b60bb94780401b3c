//! Helpers shared by the media integration tests: running ffmpeg/ffprobe and
//! comparing pictures.
//!
//! The ffmpeg-based tests are the proof that our Y4M files interoperate with
//! standard tools, so a missing ffmpeg is a failure with instructions, never a
//! silent pass.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tool` (ffmpeg or ffprobe) with `args`, failing the test with install
/// instructions if it is missing.
pub fn run_tool(tool: &str, args: &[&str]) -> Output {
    match Command::new(tool).args(args).output() {
        Ok(output) => output,
        Err(error) => panic!(
            "cannot run `{tool}` ({error}): these tests need ffmpeg and ffprobe; \
             install Debian's ffmpeg package (`apt-get install ffmpeg`)"
        ),
    }
}

/// Runs ffmpeg quietly and panics with its stderr if it fails.
pub fn ffmpeg(args: &[&str]) {
    let mut full = vec!["-hide_banner", "-loglevel", "error", "-nostdin", "-y"];
    full.extend_from_slice(args);
    let output = run_tool("ffmpeg", &full);
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Decodes a video file to raw frames of `pix_fmt` (e.g. rgb24, yuv420p) with ffmpeg.
pub fn ffmpeg_raw_frames(input: &Path, pix_fmt: &str) -> Vec<u8> {
    let output = run_tool(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-i",
            input.to_str().expect("temp paths are UTF-8"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            "-",
        ],
    );
    assert!(
        output.status.success(),
        "ffmpeg decode failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Peak signal-to-noise ratio in dB between two equally long 8-bit buffers.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "PSNR of buffers of different lengths");
    let squared_error: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let difference = f64::from(*x) - f64::from(*y);
            difference * difference
        })
        .sum();
    let mean = squared_error / a.len() as f64;
    if mean == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mean).log10()
    }
}

/// Mean absolute difference between two equally long 8-bit buffers.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}
