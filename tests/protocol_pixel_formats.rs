//! PROTOCOL.md section 5.3 specifies what the bytes of each video format
//! mean; these tests check that vchat's encoder and decoder do exactly that:
//!
//! - `i420`: Y'CbCr with the BT.601 matrix in limited ("studio") range,
//!   4:2:0 chroma of 2x2 blocks; checked against the formula, not against
//!   another implementation.
//! - `rgb24`: the picture's bytes, full range, unconverted.
//! - `jpeg`: what a sender writes (baseline SOF0, JFIF, its own tables) and
//!   what a receiver must and may accept (progressive, restart markers,
//!   4:2:2, greyscale, no DHT as MJPEG cameras send).

use std::time::Instant;

use vchat::media::{
    CapturedFrame, Decoder, EncodedPicture, Encoder, FrameContent, Picture, PictureFormat, Quality,
};
use vchat::protocol::PixelFormat;

fn flat_rgb(width: u32, height: u32, rgb: [u8; 3]) -> Picture {
    let data = rgb.repeat((width * height) as usize);
    Picture::new(width, height, PictureFormat::Rgb24, data).unwrap()
}

fn encode(picture: &Picture, format: PixelFormat, quality: u8) -> Vec<u8> {
    let frame = CapturedFrame {
        captured_at: Instant::now(),
        sequence: 0,
        content: FrameContent::Picture(picture.clone()),
    };
    let mut encoder = Encoder::new();
    let encoded = encoder
        .encode(&frame, format, Quality::new(quality).unwrap())
        .unwrap();
    encoded.payload.to_vec()
}

/// BT.601 (ITU-R BT.601-7, section 2.5.3), 8-bit limited range: Y' in
/// 16..=235, Cb and Cr in 16..=240, from full-range R'G'B' in 0..=255.
fn bt601_limited(rgb: [u8; 3]) -> [f64; 3] {
    let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = (b - y) / 1.772;
    let cr = (r - y) / 1.402;
    [16.0 + 219.0 * y, 128.0 + 224.0 * cb, 128.0 + 224.0 * cr]
}

/// The same colour under BT.709, to show the test tells the matrices apart.
fn bt709_limited(rgb: [u8; 3]) -> [f64; 3] {
    let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let cb = (b - y) / 1.8556;
    let cr = (r - y) / 1.5748;
    [16.0 + 219.0 * y, 128.0 + 224.0 * cb, 128.0 + 224.0 * cr]
}

const COLOURS: [[u8; 3]; 9] = [
    [0, 0, 0],
    [255, 255, 255],
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [128, 128, 128],
    [200, 100, 50],
    [20, 180, 220],
    [255, 255, 0],
];

/// Largest difference allowed between a byte and the formula: rounding and
/// the fixed-point arithmetic of SIMD converters.
const ROUNDING: f64 = 1.0;

#[test]
fn i420_is_bt601_limited_range() {
    for rgb in COLOURS {
        let payload = encode(&flat_rgb(4, 2, rgb), PixelFormat::I420, 90);
        // 4x2: 8 Y' bytes, then 2 Cb, then 2 Cr.
        assert_eq!(payload.len(), 8 + 2 + 2);
        let got = [payload[0], payload[8], payload[10]];
        let want = bt601_limited(rgb);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() <= ROUNDING,
                "RGB {rgb:?}: component {i} is {g}, BT.601 limited range says {w:.2} \
                 (all: {got:?} vs {want:.2?}; BT.709 would be {:.2?})",
                bt709_limited(rgb)
            );
        }
        assert!(payload[..8].iter().all(|&y| y == payload[0]), "flat Y'");
    }
    // The matrices differ by far more than the tolerance for saturated red,
    // so the check above really pins BT.601.
    let (a, b) = (bt601_limited([255, 0, 0]), bt709_limited([255, 0, 0]));
    assert!((a[0] - b[0]).abs() > 10.0);
}

#[test]
fn i420_decodes_with_the_same_matrix_and_range() {
    // Y'CbCr bytes computed from the formula decode to the RGB colour.
    for rgb in COLOURS {
        let [y, cb, cr] = bt601_limited(rgb).map(|v| v.round() as u8);
        let payload = [vec![y; 4], vec![cb], vec![cr]].concat();
        let picture = Decoder::new()
            .decode(
                EncodedPicture::new(PixelFormat::I420, 2, 2, &payload),
                PictureFormat::Rgb24,
            )
            .unwrap();
        for (i, (&got, want)) in picture.data()[..3].iter().zip(rgb).enumerate() {
            assert!(
                got.abs_diff(want) <= 2,
                "Y'CbCr {:?} decoded to {:?}, expected {rgb:?} (component {i})",
                [y, cb, cr],
                &picture.data()[..3]
            );
        }
    }
}

#[test]
fn i420_chroma_covers_2x2_blocks_and_odd_edges() {
    // A 3x3 picture: chroma is ceil(3/2) x ceil(3/2) = 2x2; the top-left
    // chroma sample covers the 2x2 luma block of pixels (0..2, 0..2), the
    // right column's chroma covers only column 2.
    let mut data = Vec::new();
    for row in 0..3 {
        for col in 0..3 {
            data.extend_from_slice(if col == 2 || row == 2 {
                &[0, 0, 255] // blue edge
            } else {
                &[255, 0, 0] // red block
            });
        }
    }
    let picture = Picture::new(3, 3, PictureFormat::Rgb24, data).unwrap();
    let payload = encode(&picture, PixelFormat::I420, 90);
    assert_eq!(payload.len(), 9 + 2 * 4);
    let (cb, cr) = (&payload[9..13], &payload[13..17]);
    let red = bt601_limited([255, 0, 0]);
    let blue = bt601_limited([0, 0, 255]);
    // Top-left block: all red. Top-right: column 2 only, rows 0-1: blue.
    assert!((f64::from(cb[0]) - red[1]).abs() <= ROUNDING, "{cb:?}");
    assert!((f64::from(cr[0]) - red[2]).abs() <= ROUNDING, "{cr:?}");
    assert!((f64::from(cb[1]) - blue[1]).abs() <= ROUNDING, "{cb:?}");
    assert!((f64::from(cr[3]) - blue[2]).abs() <= ROUNDING, "{cr:?}");
}

#[test]
fn i420_chroma_of_a_block_is_the_average_of_its_four_pixels() {
    // One 2x2 block with red, green, blue and white pixels: the sender
    // averages (centre siting, as JPEG/JFIF and H.261/MPEG-1 place chroma).
    let data = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]].concat();
    let picture = Picture::new(2, 2, PictureFormat::Rgb24, data).unwrap();
    let payload = encode(&picture, PixelFormat::I420, 90);
    let average = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]
        .map(bt601_limited)
        .iter()
        .fold([0.0; 3], |acc, c| {
            [
                acc[0] + c[0] / 4.0,
                acc[1] + c[1] / 4.0,
                acc[2] + c[2] / 4.0,
            ]
        });
    assert!(
        (f64::from(payload[4]) - average[1]).abs() <= 2.0
            && (f64::from(payload[5]) - average[2]).abs() <= 2.0,
        "Cb {} Cr {}, average of the block {:.1} {:.1}",
        payload[4],
        payload[5],
        average[1],
        average[2]
    );
}

#[test]
fn rgb24_is_the_full_range_picture_unconverted() {
    let data: Vec<u8> = (0..=255u8).flat_map(|v| [v, 255 - v, v / 2]).collect();
    let picture = Picture::new(16, 16, PictureFormat::Rgb24, data.clone()).unwrap();
    assert_eq!(encode(&picture, PixelFormat::Rgb24, 90), data);
    let decoded = Decoder::new()
        .decode(
            EncodedPicture::new(PixelFormat::Rgb24, 16, 16, &data),
            PictureFormat::Rgb24,
        )
        .unwrap();
    assert_eq!(decoded.data(), &data[..]);
}

/// The marker segments of a JPEG up to its first scan, as (marker, body).
fn segments(jpeg: &[u8]) -> Vec<(u8, &[u8])> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "starts with SOI");
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9], "ends with EOI");
    let mut out = Vec::new();
    let mut pos = 2;
    loop {
        assert_eq!(jpeg[pos], 0xFF, "a marker at {pos}");
        let marker = jpeg[pos + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        out.push((marker, &jpeg[pos + 4..pos + 2 + len]));
        if marker == 0xDA {
            return out;
        }
        pos += 2 + len;
    }
}

#[test]
fn jpeg_senders_write_baseline_jfif_with_their_own_tables() {
    let picture = flat_rgb(33, 17, [200, 100, 50]);
    // Quality 50 gives 4:2:0, quality 95 gives 4:4:4; both are allowed.
    for (quality, luma_sampling) in [(50, 0x22), (95, 0x11)] {
        let jpeg = encode(&picture, PixelFormat::Jpeg, quality);
        let segs = segments(&jpeg);
        let markers: Vec<u8> = segs.iter().map(|(m, _)| *m).collect();
        assert_eq!(markers[0], 0xE0, "APP0 first");
        assert_eq!(&segs[0].1[..5], b"JFIF\0");
        // Exactly one frame header, and it is SOF0 (baseline sequential DCT,
        // Huffman): no SOF1..SOF15.
        let sofs: Vec<u8> = markers
            .iter()
            .copied()
            .filter(|m| (0xC0..=0xCF).contains(m) && ![0xC4, 0xC8, 0xCC].contains(m))
            .collect();
        assert_eq!(sofs, [0xC0], "q{quality}: {markers:02x?}");
        assert!(markers.contains(&0xC4), "DHT present");
        assert!(markers.contains(&0xDB), "DQT present");
        let sof = segs.iter().find(|(m, _)| *m == 0xC0).unwrap().1;
        assert_eq!(sof[0], 8, "8-bit samples");
        assert_eq!(u16::from_be_bytes([sof[1], sof[2]]), 17, "height");
        assert_eq!(u16::from_be_bytes([sof[3], sof[4]]), 33, "width");
        assert_eq!(sof[5], 3, "three components: Y'CbCr");
        assert_eq!(sof[7], luma_sampling, "q{quality}: luma sampling");
        assert_eq!((sof[10], sof[13]), (0x11, 0x11), "chroma sampling 1x1");
    }
}

fn third_party_jpeg(configure: impl FnOnce(&mut jpeg_encoder::Encoder<&mut Vec<u8>>)) -> Vec<u8> {
    let picture = flat_rgb(40, 24, [20, 180, 220]);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    configure(&mut encoder);
    encoder
        .encode(picture.data(), 40, 24, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

fn decodes_to_the_colour(jpeg: &[u8], rgb: [u8; 3]) {
    let picture = Decoder::new()
        .decode(
            EncodedPicture::new(PixelFormat::Jpeg, 40, 24, jpeg),
            PictureFormat::Rgb24,
        )
        .unwrap_or_else(|e| panic!("vchat refused the JPEG: {e}"));
    for (got, want) in picture.data().chunks(3).next().unwrap().iter().zip(rgb) {
        assert!(
            got.abs_diff(want) <= 6,
            "{:?} vs {rgb:?}",
            &picture.data()[..3]
        );
    }
}

#[test]
fn jpeg_receivers_accept_what_the_spec_requires_and_progressive_too() {
    let colour = [20, 180, 220];
    // MUST: baseline with restart markers; 4:2:2, 4:2:0, 4:4:4 and 4:4:0.
    decodes_to_the_colour(&third_party_jpeg(|e| e.set_restart_interval(2)), colour);
    for sampling in [
        jpeg_encoder::SamplingFactor::R_4_2_2,
        jpeg_encoder::SamplingFactor::R_4_2_0,
        jpeg_encoder::SamplingFactor::R_4_4_4,
        jpeg_encoder::SamplingFactor::R_4_4_0,
    ] {
        decodes_to_the_colour(
            &third_party_jpeg(|e| e.set_sampling_factor(sampling)),
            colour,
        );
    }
    // MAY (vchat does): progressive (SOF2).
    let progressive = third_party_jpeg(|e| e.set_progressive(true));
    assert!(segments(&progressive).iter().any(|(m, _)| *m == 0xC2));
    decodes_to_the_colour(&progressive, colour);

    // MUST: a Motion-JPEG frame (first APP0 is "AVI1") without DHT, using
    // the standard tables of ITU T.81 Annex K.3, as UVC cameras send (vchat
    // forwards camera JPEG unchanged). Without the AVI1 marker a missing DHT
    // is a broken JPEG, refused.
    let with_tables = third_party_jpeg(|_| {});
    let mut without_dht = with_tables[..2].to_vec();
    let mut mjpeg = with_tables[..2].to_vec();
    mjpeg.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
    mjpeg.extend_from_slice(b"AVI1\0");
    mjpeg.extend_from_slice(&[0; 9]);
    let mut pos = 2;
    loop {
        let marker = with_tables[pos + 1];
        let len = usize::from(u16::from_be_bytes([
            with_tables[pos + 2],
            with_tables[pos + 3],
        ]));
        if marker == 0xDA {
            without_dht.extend_from_slice(&with_tables[pos..]);
            mjpeg.extend_from_slice(&with_tables[pos..]);
            break;
        }
        if marker != 0xC4 {
            without_dht.extend_from_slice(&with_tables[pos..pos + 2 + len]);
            if marker != 0xE0 {
                mjpeg.extend_from_slice(&with_tables[pos..pos + 2 + len]);
            }
        }
        pos += 2 + len;
    }
    assert!(!segments(&mjpeg).iter().any(|(m, _)| *m == 0xC4));
    decodes_to_the_colour(&mjpeg, colour);
    assert!(Decoder::new()
        .decode(
            EncodedPicture::new(PixelFormat::Jpeg, 40, 24, &without_dht),
            PictureFormat::Rgb24
        )
        .is_err());
}

#[test]
fn jpeg_receivers_accept_greyscale() {
    let grey = vec![77u8; 40 * 24];
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&grey, 40, 24, jpeg_encoder::ColorType::Luma)
        .unwrap();
    decodes_to_the_colour(&out, [77, 77, 77]);
}

fn receive(max_width: u32, max_height: u32) -> vchat::protocol::Receive {
    vchat::protocol::Receive {
        codecs: PixelFormat::ALL.to_vec(),
        max_width,
        max_height,
        audio: vec![],
    }
}

#[test]
fn pictures_larger_than_the_receivers_maximum_are_scaled_down_keeping_the_aspect_ratio() {
    // PROTOCOL.md 5.3.3's example: one pixel too wide.
    assert_eq!(receive(639, 480).fit(640, 480), (639, 479));
    // The height binds.
    assert_eq!(receive(1920, 1080).fit(1280, 1440), (960, 1080));
    // Both too large; the tighter limit wins.
    assert_eq!(receive(320, 240).fit(1920, 1080), (320, 180));
    // Within both limits: unchanged, never scaled up.
    assert_eq!(receive(1920, 1080).fit(640, 480), (640, 480));
    assert_eq!(receive(640, 480).fit(640, 480), (640, 480));
    // A very thin picture keeps at least one pixel.
    assert_eq!(receive(10, 10).fit(3840, 1), (10, 1));
    assert_eq!(receive(1, 1).fit(3840, 2160), (1, 1));
    // Exhaustively over small sizes: the result fits, keeps the aspect ratio
    // to within rounding down, and the binding dimension meets its limit.
    for (mw, mh) in [(7, 5), (5, 7), (16, 9), (1, 3)] {
        let limits = receive(mw, mh);
        for w in 1..40u32 {
            for h in 1..40u32 {
                let (fw, fh) = limits.fit(w, h);
                assert!(fw >= 1 && fh >= 1 && fw <= mw && fh <= mh);
                assert!(fw <= w && fh <= h, "never larger: {w}x{h} -> {fw}x{fh}");
                if w <= mw && h <= mh {
                    assert_eq!((fw, fh), (w, h));
                } else {
                    assert!(fw == mw || fh == mh, "{w}x{h} in {mw}x{mh} -> {fw}x{fh}");
                    // fw/fh within one pixel of w/h (the other dimension is
                    // rounded down), unless the "at least 1" floor applied.
                    let (w, h, fw, fh) = (w as u64, h as u64, fw as u64, fh as u64);
                    if fw > 1 && fh > 1 {
                        assert!(fw * h <= (fh + 1) * w && fh * w <= (fw + 1) * h);
                    }
                }
            }
        }
    }
}
