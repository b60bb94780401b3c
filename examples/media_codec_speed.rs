//! Measures per-frame cost of the media codecs at common call sizes.
//!
//! Run in release: `cargo run --release --example media_codec_speed [QUALITY]`.
//! Prints milliseconds per frame for JPEG encode and decode (test pattern,
//! default quality 80), RGB24 <-> I420 conversion, and the payload sizes, so
//! codec choices rest on numbers from this machine.

use std::time::{Duration, Instant};

use vchat::media::{
    test_pattern, CapturedFrame, Decoder, EncodedPicture, Encoder, FrameContent, PictureFormat,
    Quality,
};
use vchat::protocol::PixelFormat;

/// Enough repetitions for stable means without taking minutes at 1080p.
const ITERATIONS: u32 = 40;

fn mean_ms(mut work: impl FnMut()) -> f64 {
    work(); // warm caches and let the scratch buffers grow
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        work();
    }
    duration_ms(start.elapsed()) / f64::from(ITERATIONS)
}

fn duration_ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quality: Quality = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "80".to_owned())
        .parse()?;
    println!("JPEG quality {quality}, mean of {ITERATIONS} frames of the test pattern");
    println!(
        "{:>10} {:>11} {:>11} {:>10} {:>12} {:>12} {:>12}",
        "size", "jpeg enc ms", "jpeg dec ms", "jpeg KB", "rgb>i420 ms", "i420>rgb ms", "pattern ms"
    );
    for (width, height) in [(640, 480), (1280, 720), (1920, 1080)] {
        let picture = test_pattern(1, width, height)?;
        let frame = CapturedFrame {
            captured_at: Instant::now(),
            sequence: 1,
            content: FrameContent::Picture(picture.clone()),
        };
        let mut encoder = Encoder::new();
        let mut decoder = Decoder::new();
        let mut out = picture.clone();

        let jpeg = encoder
            .encode(&frame, PixelFormat::Jpeg, quality)?
            .payload
            .to_vec();
        let encode_ms = mean_ms(|| {
            encoder
                .encode(&frame, PixelFormat::Jpeg, quality)
                .expect("encode");
        });
        let decode_ms = mean_ms(|| {
            decoder
                .decode_into(
                    EncodedPicture::new(PixelFormat::Jpeg, width, height, &jpeg),
                    PictureFormat::Rgb24,
                    &mut out,
                )
                .expect("decode");
        });
        let to_i420_ms = mean_ms(|| {
            decoder
                .decode_into(
                    EncodedPicture::new(PixelFormat::Rgb24, width, height, picture.data()),
                    PictureFormat::I420,
                    &mut out,
                )
                .expect("rgb to i420");
        });
        let i420 = out.clone();
        let to_rgb_ms = mean_ms(|| {
            decoder
                .decode_into(
                    EncodedPicture::new(PixelFormat::I420, width, height, i420.data()),
                    PictureFormat::Rgb24,
                    &mut out,
                )
                .expect("i420 to rgb");
        });
        let pattern_ms = mean_ms(|| {
            vchat::media::draw_test_pattern(7, width, height, &mut out).expect("pattern");
        });
        println!(
            "{:>10} {encode_ms:>11.2} {decode_ms:>11.2} {:>10.1} {to_i420_ms:>12.2} {to_rgb_ms:>12.2} {pattern_ms:>12.2}",
            format!("{width}x{height}"),
            jpeg.len() as f64 / 1024.0,
        );
    }
    Ok(())
}
