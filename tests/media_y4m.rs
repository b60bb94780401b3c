//! YUV4MPEG2 interoperability: files ffmpeg writes are read correctly, and our
//! recordings are accepted by ffprobe/ffmpeg. Needs Debian's ffmpeg package.

mod media_support;

use std::path::Path;

use media_support::{ffmpeg, ffmpeg_raw_frames, mean_abs_diff, psnr, run_tool};
use vchat::media::{
    read_frame_number, test_pattern, Decoder, EncodedPicture, Fps, MediaError, Picture,
    PictureFormat, Y4mChroma, Y4mReader, Y4mRecorder,
};
use vchat::protocol::PixelFormat;

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Makes a 160x120, 10 fps, 5-frame clip of ffmpeg's `testsrc` in `pix_fmt`.
fn ffmpeg_clip(dir: &Path, pix_fmt: &str) -> std::path::PathBuf {
    let path = dir.join(format!("testsrc-{pix_fmt}.y4m"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-frames:v",
        "5",
        "-pix_fmt",
        pix_fmt,
        path_str(&path),
    ]);
    path
}

/// Reads every frame of `path` as RGB24 (converting I420 the way the call would).
fn read_all_rgb(path: &Path) -> (Y4mChroma, Vec<Picture>) {
    let mut reader = Y4mReader::open(path).unwrap();
    let chroma = reader.header().chroma;
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    let mut picture = Picture::black(1, 1, PictureFormat::I420).unwrap();
    while reader.read_frame_into(&mut picture).unwrap() {
        let rgb = match picture.format() {
            PictureFormat::Rgb24 => picture.clone(),
            PictureFormat::I420 => decoder
                .decode(
                    EncodedPicture::new(
                        PixelFormat::I420,
                        picture.width(),
                        picture.height(),
                        picture.data(),
                    ),
                    PictureFormat::Rgb24,
                )
                .unwrap(),
        };
        frames.push(rgb);
    }
    (chroma, frames)
}

#[test]
fn reads_ffmpeg_yuv420p_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(dir.path(), "yuv420p");
    let mut reader = Y4mReader::open(&clip).unwrap();
    let header = *reader.header();
    assert_eq!(
        (header.width, header.height, header.chroma),
        (160, 120, Y4mChroma::C420)
    );
    assert_eq!(
        (header.frame_rate.numerator, header.frame_rate.denominator),
        (10, 1)
    );

    // Planes are byte-identical to ffmpeg's own decode of the file.
    let reference = ffmpeg_raw_frames(&clip, "yuv420p");
    let mut ours = Vec::new();
    while let Some(planes) = reader.read_frame_planes().unwrap() {
        for plane in planes {
            ours.extend_from_slice(plane);
        }
    }
    assert_eq!(ours.len(), 5 * 160 * 120 * 3 / 2, "5 frames");
    assert!(ours == reference, "planes differ from ffmpeg's");
}

#[test]
fn ffmpeg_files_convert_to_the_same_colours_as_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    for pix_fmt in ["yuv420p", "yuv422p", "yuv444p"] {
        let clip = ffmpeg_clip(dir.path(), pix_fmt);
        let (chroma, frames) = read_all_rgb(&clip);
        let expected_chroma = match pix_fmt {
            "yuv420p" => Y4mChroma::C420,
            "yuv422p" => Y4mChroma::C422,
            _ => Y4mChroma::C444,
        };
        assert_eq!(chroma, expected_chroma);
        assert_eq!(frames.len(), 5, "{pix_fmt}");
        let ours: Vec<u8> = frames
            .iter()
            .flat_map(|frame| frame.data().iter().copied())
            .collect();
        let reference = ffmpeg_raw_frames(&clip, "rgb24");
        // Both sides use BT.601 limited range; they differ only in rounding
        // and in how chroma is interpolated at testsrc's hard colour edges.
        let difference = mean_abs_diff(&ours, &reference);
        let quality = psnr(&ours, &reference);
        eprintln!("{pix_fmt}: mean diff {difference:.2}, {quality:.1} dB against ffmpeg");
        assert!(
            difference < 2.0 && quality > 35.0,
            "{pix_fmt}: mean diff {difference:.2}, {quality:.1} dB"
        );
    }
}

#[test]
fn recording_round_trips_and_ffprobe_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.y4m");
    let mut recorder = Y4mRecorder::create(&path, Fps::new(15).unwrap()).unwrap();
    let mut originals = Vec::new();
    for number in 0..12u64 {
        let rgb = test_pattern(number, 320, 240).unwrap();
        // Alternate layouts: the recorder takes whatever the decoder produced.
        let picture = if number % 2 == 0 {
            rgb
        } else {
            Decoder::new()
                .decode(
                    EncodedPicture::new(PixelFormat::Rgb24, 320, 240, rgb.data()),
                    PictureFormat::I420,
                )
                .unwrap()
        };
        recorder.write(&picture).unwrap();
        originals.push(picture);
    }
    assert_eq!(recorder.finish().unwrap(), 12);

    // ffprobe reads it without a single complaint, with the right shape.
    let output = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,pix_fmt,r_frame_rate,nb_read_frames,color_range",
            "-of",
            "default=noprint_wrappers=1",
            path_str(&path),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "ffprobe: {stderr}"
    );
    let report = String::from_utf8_lossy(&output.stdout);
    for line in [
        "width=320",
        "height=240",
        "pix_fmt=yuv420p",
        "r_frame_rate=15/1",
        "nb_read_frames=12",
        "color_range=tv",
    ] {
        assert!(
            report.lines().any(|l| l == line),
            "missing {line} in:\n{report}"
        );
    }
    // ffmpeg decodes every frame without warnings, and the frame numbers are in the pictures.
    let decoded = ffmpeg_raw_frames(&path, "rgb24");
    let frame_len = 320 * 240 * 3;
    assert_eq!(decoded.len(), 12 * frame_len);
    for (number, rgb) in decoded.chunks(frame_len).enumerate() {
        let picture = Picture::new(320, 240, PictureFormat::Rgb24, rgb.to_vec()).unwrap();
        assert_eq!(read_frame_number(&picture), Some(number as u64));
    }

    // Our reader gets the I420 we wrote back byte for byte.
    let mut reader = Y4mReader::open(&path).unwrap();
    let mut picture = Picture::black(1, 1, PictureFormat::I420).unwrap();
    let mut decoder = Decoder::new();
    for original in &originals {
        assert!(reader.read_frame_into(&mut picture).unwrap());
        let expected = decoder
            .decode(
                EncodedPicture::new(original.format().pixel_format(), 320, 240, original.data()),
                PictureFormat::I420,
            )
            .unwrap();
        assert_eq!(picture, expected);
    }
    assert!(!reader.read_frame_into(&mut picture).unwrap());
}

#[test]
fn size_change_is_letterboxed_into_the_first_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resize.y4m");
    let mut recorder = Y4mRecorder::create(&path, Fps::new(30).unwrap()).unwrap();
    recorder.write(&test_pattern(1, 320, 240).unwrap()).unwrap();
    // Twice as wide: scaled to 320x120 and centred with black above and below.
    recorder.write(&test_pattern(2, 640, 240).unwrap()).unwrap();
    // Smaller, same aspect: scaled up to fill the frame.
    recorder.write(&test_pattern(3, 160, 120).unwrap()).unwrap();
    assert_eq!(recorder.size(), Some((320, 240)));
    assert_eq!(recorder.finish().unwrap(), 3);

    let output = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            path_str(&path),
        ],
    );
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "3");

    let mut reader = Y4mReader::open(&path).unwrap();
    let [_, second, third] = [(); 3].map(|()| {
        let mut picture = Picture::black(1, 1, PictureFormat::I420).unwrap();
        assert!(reader.read_frame_into(&mut picture).unwrap());
        picture
    });
    let (luma, _, _) = second.i420_planes().unwrap();
    assert!(
        luma[..320 * 60].iter().all(|&y| y == 16),
        "top band is black"
    );
    assert!(
        luma[320 * 180..].iter().all(|&y| y == 16),
        "bottom band is black"
    );
    assert!(
        luma[320 * 60..320 * 180].iter().any(|&y| y > 100),
        "the picture is in the middle"
    );
    // The upscaled frame still carries its number.
    assert_eq!(read_frame_number(&third), Some(3));
}

#[test]
fn missing_file_names_the_path() {
    let error = Y4mReader::open("/nonexistent/clip.y4m").err().unwrap();
    assert!(matches!(error, MediaError::FileRead { .. }));
    assert!(
        error.to_string().contains("/nonexistent/clip.y4m"),
        "{error}"
    );
}
