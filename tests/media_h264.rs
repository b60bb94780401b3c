//! H.264 as vchat sends it: a stream any decoder reads (ffmpeg decodes it
//! to exactly our decoder's pixels), Constrained Baseline as PROTOCOL.md
//! 5.3.4 requires, and a 720p clip within 1.5 Mbit/s at the quality the
//! issue asks for.

mod media_support;

use std::time::{Duration, Instant};

use media_support::{ffmpeg_raw_frames, psnr, run_tool};
use vchat::media::{
    check_access_unit, test_pattern, CapturedFrame, Decoder, Encoder, FrameContent, H264Frame,
    OwnedEncodedPicture, Picture, PictureFormat, Quality,
};
use vchat::protocol::PixelFormat;

/// Frame `n` of the moving test pattern under a little deterministic
/// noise (+-4 per channel), so the stream is not trivially small.
fn noisy_pattern(n: u64, width: u32, height: u32) -> Picture {
    let picture = test_pattern(n, width, height).unwrap();
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let noisy: Vec<u8> = picture
        .data()
        .iter()
        .map(|&value| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state % 9) as i16 - 4;
            (i16::from(value) + noise).clamp(0, 255) as u8
        })
        .collect();
    Picture::new(width, height, PictureFormat::Rgb24, noisy).unwrap()
}

fn captured(picture: Picture, at: Instant) -> CapturedFrame {
    CapturedFrame {
        captured_at: at,
        sequence: 0,
        content: FrameContent::Picture(picture),
    }
}

/// Encodes `count` frames at 30 fps as the call's media thread does,
/// asking for a keyframe at `keyframe_at`; returns the access units and
/// the source pictures.
fn encode_stream(
    count: u64,
    width: u32,
    height: u32,
    bitrate: u32,
    keyframe_at: Option<u64>,
) -> (Vec<OwnedEncodedPicture>, Vec<Picture>) {
    let mut encoder = Encoder::new();
    encoder.h264().set_bitrate(bitrate);
    encoder.h264().set_frame_rate(30);
    let start = Instant::now();
    let mut units = Vec::new();
    let mut sources = Vec::new();
    for n in 0..count {
        if Some(n) == keyframe_at {
            encoder.h264().request_keyframe();
        }
        let picture = noisy_pattern(n, width, height);
        sources.push(picture.clone());
        let at = start + Duration::from_millis(n * 1000 / 30);
        let unit = encoder
            .encode_to_bytes(captured(picture, at), PixelFormat::H264, Quality::default())
            .unwrap()
            .expect("vchat's encoder does not skip pictures itself");
        let kind = encoder.last_h264_frame().unwrap();
        assert_eq!(
            kind == H264Frame::Keyframe,
            n == 0 || Some(n) == keyframe_at,
            "frame {n} is {kind:?}"
        );
        units.push(unit);
    }
    (units, sources)
}

fn decode_all(units: &[OwnedEncodedPicture]) -> Vec<Picture> {
    let mut decoder = Decoder::new();
    units
        .iter()
        .map(|unit| {
            let mut shown = Picture::empty(PictureFormat::Rgb24);
            let mut yuv = Picture::empty(PictureFormat::I420);
            decoder
                .decode_for_show_and_record(unit, &mut shown, Some(&mut yuv))
                .unwrap();
            yuv
        })
        .collect()
}

#[test]
fn ffmpeg_decodes_the_stream_to_exactly_our_pictures() {
    let (units, _) = encode_stream(45, 320, 240, 600_000, Some(30));
    let stream: Vec<u8> = units.iter().flat_map(|u| u.payload.to_vec()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sent.h264");
    std::fs::write(&path, &stream).unwrap();

    let probe = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,profile,width,height,pix_fmt",
            "-of",
            "default=noprint_wrappers=1",
            path.to_str().unwrap(),
        ],
    );
    let probe = String::from_utf8_lossy(&probe.stdout);
    for line in [
        "codec_name=h264",
        "profile=Constrained Baseline",
        "width=320",
        "height=240",
        "pix_fmt=yuv420p",
    ] {
        assert!(probe.lines().any(|l| l == line), "{line} in:\n{probe}");
    }

    // H.264 decoding is exact: ffmpeg's pixels are our decoder's.
    let theirs = ffmpeg_raw_frames(&path, "yuv420p");
    let ours: Vec<u8> = decode_all(&units)
        .iter()
        .flat_map(|p| p.data().to_vec())
        .collect();
    assert_eq!(theirs.len(), ours.len(), "ffmpeg decoded every frame");
    assert!(theirs == ours, "ffmpeg's frames differ from ours");
}

#[test]
fn every_access_unit_is_what_protocol_md_allows() {
    let (units, _) = encode_stream(31, 640, 480, 800_000, Some(20));
    for (n, unit) in units.iter().enumerate() {
        let checked = check_access_unit(&unit.payload, unit.width, unit.height).unwrap();
        assert_eq!(checked.keyframe, n == 0 || n == 20, "frame {n}");
    }
}

/// The quality goal: 1280x720 at 30 fps within 1.5 Mbit/s at a
/// PSNR of at least 35 dB against the source. The content is ffmpeg's
/// `testsrc2` (moving shapes, gradients, text and a counter over a
/// detailed background), 3 s of it; skipped pictures count against the
/// picture still shown. The encoder is deterministic (one thread,
/// timestamps from the frame clock), so the figure is too: measured 37.7
/// dB at 1.50 Mbit/s. Not a timing test.
#[test]
fn a_720p30_clip_fits_1_5_mbit_at_35_db() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("testsrc2.y4m");
    let clip_arg = clip.to_str().unwrap();
    media_support::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-t",
        "3",
        "-pix_fmt",
        "yuv420p",
        clip_arg,
    ]);
    let mut reader = vchat::media::Y4mReader::open(&clip).unwrap();
    let mut sources = Vec::new();
    let mut picture = Picture::empty(PictureFormat::I420);
    while reader.read_frame_into(&mut picture).unwrap() {
        sources.push(picture.clone());
    }
    assert_eq!(sources.len(), 90);
    let mut encoder = Encoder::new();
    encoder.h264().set_bitrate(1_500_000);
    encoder.h264().set_frame_rate(30);
    let mut decoder = Decoder::new();
    let start = Instant::now();
    let (mut bytes, mut total_psnr) = (0usize, 0.0);
    let mut shown = Picture::empty(PictureFormat::Rgb24);
    let mut decoded = Picture::empty(PictureFormat::I420);
    for (n, source) in sources.iter().enumerate() {
        let at = start + Duration::from_millis(n as u64 * 1000 / 30);
        let unit = encoder
            .encode_to_bytes(
                captured(source.clone(), at),
                PixelFormat::H264,
                Quality::default(),
            )
            .unwrap();
        if let Some(unit) = unit {
            bytes += unit.payload.len();
            decoder
                .decode_for_show_and_record(&unit, &mut shown, Some(&mut decoded))
                .unwrap();
        }
        total_psnr += psnr(source.data(), decoded.data());
    }
    let mbit_per_s = bytes as f64 * 8.0 / 3.0 / 1e6;
    let mean_psnr = total_psnr / sources.len() as f64;
    eprintln!("720p30 testsrc2: {mbit_per_s:.2} Mbit/s, mean PSNR {mean_psnr:.1} dB");
    assert!(mbit_per_s <= 1.5 * 1.1, "{mbit_per_s:.2} Mbit/s");
    assert!(mean_psnr >= 35.0, "{mean_psnr:.1} dB");
}
