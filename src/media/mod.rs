//! Media: where pictures and voice come from, how they travel, and how received video is kept.
//!
//! # Layout
//!
//! - [`options`](SourceSpec): `--source`, `--size`, `--fps`, `--quality`, parsed once with their limits.
//! - `picture`: [`Picture`] (RGB24 or I420 pixels) and [`CapturedFrame`] (a picture,
//!   or a JPEG straight from an MJPEG camera, with its capture time).
//! - `source`: the [`FrameSource`] trait alone, so each source implements it
//!   without knowing the others.
//! - `open`: [`open_source`] picks the source `--source` names: the camera
//!   (`camera` module, its own thread), the test pattern (`pattern`), Y4M files (`y4m`).
//! - `pacer`: [`Pacer`], the frame clock of every source that is not a camera.
//! - `latest`: [`Latest`], the newest-only hand-off between a producer and a
//!   consumer (camera thread -> source, and between the call's stages).
//! - `codec`: [`Encoder`] and [`Decoder`] between frames and wire payloads
//!   ([`PixelFormat`](crate::protocol::PixelFormat) rgb24, i420, jpeg, h264).
//! - `h264`: [`H264Encoder`] and [`H264Decoder`], the stateful codec: its
//!   keyframes, and the checks a received stream passes before OpenH264
//!   sees it.
//! - `convert`: colour conversion and scaling, where the colour conventions live.
//! - `y4m`: [`Y4mReader`] for `--source FILE.y4m` and [`Y4mRecorder`] for `--record`.
//! - [`audio`]: voice, its sources, Opus, the jitter buffer and playout.
//!
//! # Data flow in a call
//!
//! ```text
//!  capture thread                    sender                      receiver
//!  FrameSource::next_frame ─newest─► Encoder::encode ─payload─► Decoder::decode_into ─► window (RGB24)
//!  (camera / test / y4m)   frame     (raw / jpeg / h264 /        (checks length / size;  └► Y4mRecorder
//!                          only       MJPEG pass-through)         h264: SPS, keyframes)
//! ```
//!
//! # Colour conventions
//!
//! RGB24 is full range. I420 (raw payloads, Y4M files, recordings) is BT.601
//! limited range, what Y4M tools assume. JPEG is BT.601 full range by its own
//! definition, handled inside the JPEG crates.

pub mod audio;
use std::time::{SystemTime, UNIX_EPOCH};

mod camera;
mod codec;
mod convert;
mod error;
mod h264;
mod latest;
mod open;
mod options;
mod pacer;
mod pattern;
mod picture;
mod source;
mod y4m;

pub use camera::{
    camera_formats, choose_format, describe_available, print_cameras, query_cameras,
    CameraEncoding, CameraFormatInfo, CameraSource, CameraSummary, FormatChoice,
};
pub use codec::{Decoder, EncodedPicture, Encoder, OwnedEncodedPicture};
pub use error::MediaError;
pub use h264::{
    check_access_unit, AccessUnit, H264Decoder, H264Encoder, H264Frame, KEYFRAME_INTERVAL,
    MIN_H264_SIDE, START_BITRATE_BPS,
};
pub use latest::Latest;
pub use open::{open_source, TestPatternSource, Y4mFileSource};
pub use options::{Fps, Quality, Size, SourceSpec, MIN_FRAME_SIDE};
pub use pacer::Pacer;
pub use pattern::{draw_test_pattern, read_frame_number, test_pattern, FRAME_NUMBER_BITS};
pub use picture::{CapturedFrame, FrameContent, JpegImage, Picture, PictureFormat};
pub use source::FrameSource;
pub use y4m::{
    FrameRate, Placement, Timeline, Y4mChroma, Y4mHeader, Y4mReader, Y4mRecorder, MAX_FILL,
};

/// Microseconds since the Unix epoch: the clock of `Video::capture_time_us` and
/// `Audio::capture_time_us`.
///
/// Wall-clock time so the receiver can compute capture-to-display latency.
/// Exact when both peers share a clock (same machine: the demo, the tests, the
/// benchmark); across machines it is as good as their clock synchronisation.
pub fn unix_micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}
