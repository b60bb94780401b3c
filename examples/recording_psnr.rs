//! Picture quality of a call as the far side saw it: PSNR of a recording
//! (`vchat ... --record FILE.y4m`) against the looped source clip the
//! sender played (`--source CLIP.y4m`). The network lab (scripts/netlab/
//! run.sh --psnr) runs it after a call.
//!
//! The recording carries no frame numbers, so each picture is matched to the
//! clip frame it is closest to (smallest luma error over all of them; the
//! lab's clip has fresh noise in every frame, so the right one stands out by
//! several dB). The recorder places pictures by capture time and repeats the
//! previous one for a period with no new picture, so two figures come out:
//! - `decoded`: the distinct pictures against their own source frame, what
//!   the codec delivered;
//! - `as_shown`: every period of the recording against the source frame of
//!   that period (the matched frame of the last distinct picture, advanced
//!   one clip frame per period), so a frozen picture counts as what the
//!   viewer saw while the sender's camera moved on.
//!
//! PSNR is of luma (Y'), 8 bits, per picture, then averaged (mean of dB, as
//! ffmpeg's psnr filter reports `average`), capped at 100 dB for identical
//! pictures. Output: one JSON object on stdout.
//!
//! A recording keeps the size of the first picture it got, and a call on a
//! narrow link starts smaller than the camera (the rate control's size
//! ladder), so the recording may be smaller than the clip: later, larger
//! pictures were scaled down into it by the recorder. Then the clip is
//! scaled to the recording's size the same way (bilinear convolution, as
//! vchat's recorder does) and PSNR is measured at that size; the output
//! says so (`compared_at`). Downscaling averages away some of the coding
//! error, so such a figure flatters the codec a little: read it as the
//! quality at that display size.
//!
//! `cargo run --release --example recording_psnr -- CLIP.y4m RECORDING.y4m
//! [--skip-seconds S]` (S: leading seconds of the recording left out, the
//! call's start; default 2).

use std::error::Error;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use vchat::media::Y4mReader;

fn main() {
    if let Err(e) = run() {
        eprintln!("recording_psnr: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut paths, mut skip_seconds) = (Vec::new(), 2.0f64);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--skip-seconds" => {
                skip_seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or("--skip-seconds takes a number of seconds, e.g. 2")?;
            }
            _ => paths.push(arg.clone()),
        }
    }
    let [clip_path, recording_path] = paths.as_slice() else {
        return Err("usage: recording_psnr CLIP.y4m RECORDING.y4m [--skip-seconds S]".into());
    };

    let mut clip = Y4mReader::open(clip_path)?;
    let clip_size = (clip.header().width, clip.header().height);
    let mut source: Vec<Vec<u8>> = Vec::new();
    while let Some([y, _, _]) = clip.read_frame_planes()? {
        source.push(y.to_vec());
    }
    if source.is_empty() {
        return Err(format!("{clip_path} has no frames").into());
    }

    let mut recording = Y4mReader::open(recording_path)?;
    let header = *recording.header();
    let size = (header.width, header.height);
    if size != clip_size {
        // Same aspect ratio (to a pixel) or the recorder letterboxed.
        let (cw, ch) = (u64::from(clip_size.0), u64::from(clip_size.1));
        let (rw, rh) = (u64::from(size.0), u64::from(size.1));
        if (cw * rh).abs_diff(rw * ch) > cw.max(ch) {
            return Err(format!(
                "the recording is {}x{} and the clip {}x{}: different shapes cannot be compared",
                size.0, size.1, clip_size.0, clip_size.1
            )
            .into());
        }
        source = source
            .iter()
            .map(|y| scale_luma(y, clip_size, size))
            .collect::<Result<_, _>>()?;
    }
    let skip = (skip_seconds * header.frame_rate.as_f64()).round() as u64;

    let mut previous: Option<Vec<u8>> = None;
    // The clip frame the current period shows, once a picture was matched.
    let mut shown_index: Option<usize> = None;
    let (mut decoded, mut as_shown) = (Vec::new(), Vec::new());
    let mut periods = 0u64;
    while let Some([y, _, _]) = recording.read_frame_planes()? {
        periods += 1;
        let repeat = previous.as_deref() == Some(y);
        if repeat {
            shown_index = shown_index.map(|i| (i + 1) % source.len());
        } else {
            let expected = shown_index.map(|i| (i + 1) % source.len());
            let (index, sse) = best_match(y, &source, expected);
            shown_index = Some(index);
            if periods > skip {
                decoded.push(psnr(sse, y.len()));
            }
            previous = Some(y.to_vec());
        }
        if periods > skip {
            if let (Some(index), Some(picture)) = (shown_index, previous.as_deref()) {
                as_shown.push(psnr(sse(picture, &source[index], u64::MAX), picture.len()));
            }
        }
    }
    if decoded.is_empty() {
        return Err(format!(
            "{recording_path} has no picture after the first {skip_seconds} s ({periods} periods)"
        )
        .into());
    }
    let report = serde_json::json!({
        "clip_frames": source.len(),
        "clip_size": format!("{}x{}", clip_size.0, clip_size.1),
        "compared_at": format!("{}x{}", size.0, size.1),
        "recorded_periods": periods,
        "skipped_periods": skip.min(periods),
        "distinct_pictures": decoded.len(),
        "decoded": summary(&mut decoded),
        "as_shown": summary(&mut as_shown),
    });
    println!("{report}");
    Ok(())
}

/// A luma plane scaled as vchat's recorder scales pictures.
fn scale_luma(y: &[u8], from: (u32, u32), to: (u32, u32)) -> Result<Vec<u8>, Box<dyn Error>> {
    let src = ImageRef::new(from.0, from.1, y, PixelType::U8)?;
    let mut dst = Image::new(to.0, to.1, PixelType::U8);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(&src, &mut dst, &options)?;
    Ok(dst.into_vec())
}

/// The clip frame closest to `picture`: (index, squared error). Tries the
/// expected one first, so the rest can stop early once they are worse.
fn best_match(picture: &[u8], source: &[Vec<u8>], expected: Option<usize>) -> (usize, u64) {
    let mut best = (0usize, u64::MAX);
    let order = expected.into_iter().chain(0..source.len());
    for index in order {
        let error = sse(picture, &source[index], best.1);
        if error < best.1 {
            best = (index, error);
        }
    }
    best
}

/// Sum of squared differences, stopping (with a value ≥ `limit`) once it
/// reaches `limit`.
fn sse(a: &[u8], b: &[u8], limit: u64) -> u64 {
    let mut total = 0u64;
    for (row_a, row_b) in a.chunks(4096).zip(b.chunks(4096)) {
        total += row_a
            .iter()
            .zip(row_b)
            .map(|(&x, &y)| {
                let d = i32::from(x) - i32::from(y);
                (d * d) as u64
            })
            .sum::<u64>();
        if total >= limit {
            return total;
        }
    }
    total
}

fn psnr(sse: u64, samples: usize) -> f64 {
    if sse == 0 {
        return 100.0;
    }
    let mse = sse as f64 / samples as f64;
    (10.0 * (255.0f64 * 255.0 / mse).log10()).min(100.0)
}

/// Mean, 10th percentile and minimum, rounded to 0.01 dB.
fn summary(values: &mut [f64]) -> serde_json::Value {
    if values.is_empty() {
        return serde_json::Value::Null;
    }
    values.sort_by(f64::total_cmp);
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    serde_json::json!({
        "mean_db": round(mean),
        "p10_db": round(values[values.len() / 10]),
        "min_db": round(values[0]),
        "count": values.len(),
    })
}
