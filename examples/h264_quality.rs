//! Measures what the codec choice rests on: for a clip, H.264 and JPEG's
//! bitrate, picture quality (PSNR of the decoded I420 against the source)
//! and encode and decode time per frame on one core.
//!
//! Run in release: `cargo run --release --example h264_quality [CLIP.y4m]`.
//! Without a clip it uses vchat's test pattern under noise; with one (e.g.
//! `ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t
//! -t 5 -pix_fmt yuv420p clip.y4m`) the clip's frames at its own size. PSNR
//! counts every source frame: a skipped one against the picture the viewer
//! still sees.
//! BENCHMARKS.md ("Choosing the codec") has the figures and the commands.

use std::time::{Duration, Instant};

use vchat::media::{
    test_pattern, CapturedFrame, Decoder, Encoder, FrameContent, OwnedEncodedPicture, Picture,
    PictureFormat, Quality, Y4mReader,
};
use vchat::protocol::PixelFormat;

const FRAMES: u64 = 150;
const FPS: u64 = 30;

fn frames_from(clip: Option<&str>) -> Result<Vec<Picture>, Box<dyn std::error::Error>> {
    let mut pictures = Vec::new();
    match clip {
        Some(path) => {
            let mut reader = Y4mReader::open(path)?;
            let mut picture = Picture::empty(PictureFormat::I420);
            while pictures.len() < FRAMES as usize && reader.read_frame_into(&mut picture)? {
                pictures.push(picture.clone());
            }
        }
        None => {
            for n in 0..FRAMES {
                let rgb = test_pattern(n, 1280, 720)?;
                let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let noisy: Vec<u8> = rgb
                    .data()
                    .iter()
                    .map(|&v| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (i16::from(v) + (state % 9) as i16 - 4).clamp(0, 255) as u8
                    })
                    .collect();
                pictures.push(Picture::new(1280, 720, PictureFormat::Rgb24, noisy)?);
            }
        }
    }
    Ok(pictures)
}

fn i420_of(picture: &Picture) -> Picture {
    let mut out = Picture::empty(PictureFormat::I420);
    Decoder::new()
        .decode_into(
            vchat::media::EncodedPicture::new(
                picture.format().pixel_format(),
                picture.width(),
                picture.height(),
                picture.data(),
            ),
            PictureFormat::I420,
            &mut out,
        )
        .expect("to I420");
    out
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

struct Run {
    mbit_per_s: f64,
    psnr: f64,
    encode_ms: f64,
    decode_ms: f64,
    /// Pictures the encoder skipped to hold its bitrate.
    skipped: u32,
}

fn run(pictures: &[Picture], format: PixelFormat, bitrate: u32, quality: u8) -> Run {
    let mut encoder = Encoder::new();
    encoder.h264().set_bitrate(bitrate);
    encoder.h264().set_frame_rate(FPS as u32);
    let mut decoder = Decoder::new();
    let start = Instant::now();
    let (mut bytes, mut psnr_sum, mut encode, mut decode) =
        (0usize, 0.0, Duration::ZERO, Duration::ZERO);
    let mut skipped = 0u32;
    let mut shown = Picture::empty(PictureFormat::Rgb24);
    let mut decoded = Picture::empty(PictureFormat::I420);
    for (n, picture) in pictures.iter().enumerate() {
        let frame = CapturedFrame {
            captured_at: start + Duration::from_millis(n as u64 * 1000 / FPS),
            sequence: n as u64,
            content: FrameContent::Picture(picture.clone()),
        };
        let began = Instant::now();
        let unit = encoder
            .encode_to_bytes(frame, format, Quality::new(quality).expect("quality"))
            .expect("encode");
        encode += began.elapsed();
        let source = i420_of(picture);
        let Some(unit): Option<OwnedEncodedPicture> = unit else {
            // Skipped to hold the bitrate: the viewer keeps seeing the
            // picture before, which is what its quality is measured on.
            skipped += 1;
            if decoded.data().len() == source.data().len() {
                psnr_sum += psnr(source.data(), decoded.data());
            }
            continue;
        };
        bytes += unit.payload.len();
        let began = Instant::now();
        decoder
            .decode_for_show_and_record(&unit, &mut shown, Some(&mut decoded))
            .expect("decode");
        decode += began.elapsed();
        psnr_sum += psnr(source.data(), decoded.data());
    }
    let frames = pictures.len() as f64;
    let coded = frames - f64::from(skipped);
    Run {
        mbit_per_s: bytes as f64 * 8.0 * FPS as f64 / frames / 1e6,
        psnr: psnr_sum / frames,
        encode_ms: encode.as_secs_f64() * 1e3 / frames,
        decode_ms: decode.as_secs_f64() * 1e3 / coded.max(1.0),
        skipped,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clip = std::env::args().nth(1);
    let pictures = frames_from(clip.as_deref())?;
    let (w, h) = (pictures[0].width(), pictures[0].height());
    println!(
        "{} frames of {w}x{h} at {FPS} fps ({}); encode and decode on one thread each",
        pictures.len(),
        clip.as_deref().unwrap_or("test pattern + noise")
    );
    println!("| codec | setting | Mbit/s | PSNR dB | encode ms | decode ms | skipped |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let show = |name: &str, setting: String, r: &Run| {
        println!(
            "| {name} | {setting} | {:.2} | {:.1} | {:.2} | {:.2} | {} |",
            r.mbit_per_s, r.psnr, r.encode_ms, r.decode_ms, r.skipped
        );
    };
    let jpeg = run(&pictures, PixelFormat::Jpeg, 0, 80);
    show("jpeg", "quality 80".into(), &jpeg);
    let jpeg_low = run(&pictures, PixelFormat::Jpeg, 0, 30);
    show("jpeg", "quality 30".into(), &jpeg_low);
    for bitrate in [500_000, 1_500_000, 3_000_000] {
        let h264 = run(&pictures, PixelFormat::H264, bitrate, 80);
        show("h264", format!("{} kbit/s", bitrate / 1000), &h264);
    }
    let same = (jpeg_low.mbit_per_s * 1e6) as u32;
    let h264 = run(&pictures, PixelFormat::H264, same, 80);
    show(
        "h264",
        format!("JPEG q30's {:.2} Mbit/s", jpeg_low.mbit_per_s),
        &h264,
    );
    Ok(())
}
