//! Sources through the public API the call uses: `open_source`, the blocking
//! `next_frame`, and the whole send/receive/record pipeline in one thread.

mod media_support;

use std::path::Path;

use vchat::media::{
    open_source, read_frame_number, test_pattern, Decoder, EncodedPicture, Encoder, FrameContent,
    FrameSource, MediaError, Picture, PictureFormat, Quality, Size, SourceSpec, Y4mReader,
    Y4mRecorder,
};
use vchat::protocol::PixelFormat;

fn spec(text: &str) -> SourceSpec {
    text.parse().unwrap()
}

fn size(text: &str) -> Size {
    text.parse().unwrap()
}

fn picture_of(frame: &vchat::media::CapturedFrame) -> &Picture {
    match &frame.content {
        FrameContent::Picture(picture) => picture,
        FrameContent::Jpeg(_) => panic!("synthetic sources produce pictures"),
    }
}

#[test]
fn sources_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Box<dyn FrameSource>>();
}

#[test]
fn test_source_through_every_codec_to_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("received.y4m");
    let mut source = open_source(
        &spec("test"),
        size("320x240"),
        "120".parse().unwrap(),
        PixelFormat::Jpeg,
    )
    .unwrap();
    assert_eq!(source.describe(), "test pattern 320x240 at 120 fps");
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new();
    let mut shown = Picture::black(1, 1, PictureFormat::Rgb24).unwrap();
    let mut recorder = Y4mRecorder::create(&recording, "120".parse().unwrap()).unwrap();
    let mut numbers = Vec::new();
    for codec in [PixelFormat::Rgb24, PixelFormat::I420, PixelFormat::Jpeg] {
        for _ in 0..3 {
            let frame = source.next_frame().unwrap();
            let sent = frame.sequence;
            let encoded = encoder.encode(&frame, codec, Quality::default()).unwrap();
            decoder
                .decode_into(
                    EncodedPicture::new(codec, encoded.width, encoded.height, encoded.payload),
                    PictureFormat::Rgb24,
                    &mut shown,
                )
                .unwrap();
            assert_eq!(read_frame_number(&shown), Some(sent), "{codec}");
            if codec == PixelFormat::Rgb24 {
                // Raw RGB is pixel exact: the receiver can regenerate frame N.
                assert_eq!(shown, test_pattern(sent, 320, 240).unwrap());
            }
            recorder.write(&shown).unwrap();
            numbers.push(sent);
        }
    }
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "{numbers:?}"
    );
    assert_eq!(recorder.finish().unwrap(), 9);

    let mut reader = Y4mReader::open(&recording).unwrap();
    let mut picture = Picture::black(1, 1, PictureFormat::I420).unwrap();
    for expected in numbers {
        assert!(reader.read_frame_into(&mut picture).unwrap());
        assert_eq!(read_frame_number(&picture), Some(expected));
    }
}

fn record_clip(path: &Path, frames: u64, width: u32, height: u32) {
    let mut recorder = Y4mRecorder::create(path, "120".parse().unwrap()).unwrap();
    for number in 0..frames {
        recorder
            .write(&test_pattern(number, width, height).unwrap())
            .unwrap();
    }
    recorder.finish().unwrap();
}

#[test]
fn file_source_plays_at_its_own_size_and_loops() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.y4m");
    record_clip(&clip, 3, 96, 64);
    let clip_spec = spec(clip.to_str().unwrap());
    // --size and --fps do not apply to files.
    let mut source = open_source(
        &clip_spec,
        size("640x480"),
        "30".parse().unwrap(),
        PixelFormat::I420,
    )
    .unwrap();
    assert!(
        source
            .describe()
            .contains("(96x64 4:2:0 at 120.00 fps, looping)"),
        "{}",
        source.describe()
    );
    let numbers: Vec<Option<u64>> = (0..7)
        .map(|_| {
            let frame = source.next_frame().unwrap();
            let picture = picture_of(&frame);
            assert_eq!(
                (picture.width(), picture.height(), picture.format()),
                (96, 64, PictureFormat::I420)
            );
            read_frame_number(picture)
        })
        .collect();
    assert_eq!(numbers, [0, 1, 2, 0, 1, 2, 0].map(Some));
}

#[test]
fn bad_files_fail_at_open_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let no_frames = dir.path().join("empty.y4m");
    std::fs::write(&no_frames, b"YUV4MPEG2 W64 H64 F30:1 C420jpeg\n").unwrap();
    let missing = dir.path().join("missing.y4m");
    let ten_bit = dir.path().join("deep.y4m");
    std::fs::write(&ten_bit, b"YUV4MPEG2 W64 H64 F30:1 C420p10\nFRAME\n").unwrap();
    for (path, needle) in [
        (&no_frames, "it contains no frames"),
        (&missing, "cannot read"),
        (&ten_bit, "C420p10 is not supported"),
    ] {
        let error = open_source(
            &spec(path.to_str().unwrap()),
            Size::default(),
            Default::default(),
            PixelFormat::Rgb24,
        )
        .err()
        .unwrap();
        let message = error.to_string();
        assert!(
            message.contains(needle) && message.contains(path.to_str().unwrap()),
            "{message}"
        );
    }
}

#[test]
fn missing_camera_is_a_clear_error_listing_what_exists() {
    let error = open_source(
        &spec("camera:999"),
        Size::default(),
        Default::default(),
        PixelFormat::Jpeg,
    )
    .err()
    .unwrap();
    match &error {
        // This is what machines without cameras (CI) see.
        MediaError::NoCameras => assert!(error.to_string().contains("--source test"), "{error}"),
        MediaError::CameraNotFound {
            index: 999,
            available,
        } => {
            assert!(error.to_string().contains(available.as_str()), "{error}")
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn bad_option_strings_are_rejected_with_the_rule() {
    let size_error = "4000x3000".parse::<Size>().unwrap_err().to_string();
    assert!(size_error.contains("3840x2160"), "{size_error}");
    let source_error = "rtsp://camera"
        .parse::<SourceSpec>()
        .unwrap_err()
        .to_string();
    assert!(source_error.contains("`camera:N`"), "{source_error}");
    assert!("0".parse::<vchat::media::Fps>().is_err());
    assert!("0".parse::<Quality>().is_err());
}
