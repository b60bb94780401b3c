//! The one error type of the media layer.
//!
//! Every message says what was wrong and, where the user can do something
//! about it, what to do: these errors reach people through `vchat`'s output.

use std::io;
use std::path::PathBuf;

use crate::protocol::PixelFormat;

/// Everything that can go wrong while capturing, converting, coding or recording video.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A `--size` value that is not `WxH` within the supported limits.
    #[error(
        "invalid size {input:?}: {problem} (expected WxH from 16x16 to 3840x2160, e.g. 1280x720)"
    )]
    InvalidSize { input: String, problem: String },

    /// A `--source` value that names no kind of source.
    #[error(
        "invalid source {input:?}: expected `camera`, `camera:N` (N from `vchat cameras`), \
         `test`, `flash`, or the path of a .y4m file"
    )]
    InvalidSource { input: String },

    /// A `--fps` value out of range.
    #[error(
        "invalid frame rate {input:?}: expected a whole number of frames per second from 1 to 120"
    )]
    InvalidFps { input: String },

    /// A `--quality` value out of range.
    #[error(
        "invalid JPEG quality {input:?}: expected a whole number from 1 (smallest) to 100 (best)"
    )]
    InvalidQuality { input: String },

    /// A picture whose dimensions or buffer length do not fit together.
    #[error("invalid picture: {problem}")]
    InvalidPicture { problem: String },

    /// A raw payload whose length does not match its announced dimensions.
    #[error(
        "{format} frame of {width}x{height} must be {expected} bytes but the payload has {actual}: \
         sender and receiver disagree about the frame layout"
    )]
    PayloadLength {
        format: PixelFormat,
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },

    /// Frame dimensions outside what the media layer accepts.
    #[error("frame size {width}x{height} is not supported: {problem}")]
    UnsupportedFrameSize {
        width: u32,
        height: u32,
        problem: String,
    },

    /// A JPEG payload that could not be decoded.
    #[error("cannot decode JPEG frame: {reason} (corrupt or truncated data)")]
    CorruptJpeg { reason: String },

    /// A compressed picture whose own dimensions differ from those announced beside it.
    #[error(
        "{format} frame is {actual_width}x{actual_height} but was announced as {width}x{height}"
    )]
    SizeMismatch {
        format: PixelFormat,
        width: u32,
        height: u32,
        actual_width: u32,
        actual_height: u32,
    },

    /// An H.264 payload that breaks PROTOCOL.md 5.3.4 or that OpenH264 cannot decode.
    #[error("cannot decode H.264 frame: {reason}")]
    CorruptH264 { reason: String },

    /// An H.264 frame that refers to frames this decoder never saw (it
    /// started late, or frames were lost): not an error of the peer's, the
    /// decoder waits for the next keyframe.
    #[error("H.264 frame skipped: the decoder waits for a keyframe")]
    AwaitingKeyframe,

    /// The H.264 encoder refused a picture.
    #[error("cannot encode H.264: {reason}")]
    H264Encode { reason: String },

    /// The JPEG encoder refused a picture.
    #[error("cannot encode JPEG: {reason}")]
    JpegEncode { reason: String },

    /// A colour conversion or scaling step failed; this points to a bug in vchat.
    #[error("internal picture conversion failed ({step}): {reason}; please report this as a bug")]
    Conversion { step: &'static str, reason: String },

    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    FileRead { path: PathBuf, source: io::Error },

    /// A file could not be created or written.
    #[error("cannot write {path}: {source}")]
    FileWrite { path: PathBuf, source: io::Error },

    /// A file that is not a YUV4MPEG2 stream vchat can play.
    #[error("{path} is not a usable YUV4MPEG2 (.y4m) file: {problem}")]
    MalformedY4m { path: PathBuf, problem: String },

    /// No camera is connected (or none is visible to this user).
    #[error(
        "no cameras found: connect a camera (and check you may open /dev/video*), \
         or use `--source test` or `--source FILE.y4m`"
    )]
    NoCameras,

    /// The requested camera index does not exist.
    #[error("camera {index} does not exist; available cameras: {available} (see `vchat cameras`)")]
    CameraNotFound { index: u32, available: String },

    /// The camera exists but could not be opened or configured.
    #[error(
        "cannot open camera {index}: {reason}. It may be in use by another program or not a \
         capture device; available cameras: {available} (see `vchat cameras`)"
    )]
    CameraOpen {
        index: u32,
        reason: String,
        available: String,
    },

    /// The camera offers no format vchat can decode.
    #[error(
        "camera {index} offers no format vchat can use (it needs MJPEG, YUYV, NV12 or RGB24); \
         it offers: {offered}"
    )]
    CameraNoUsableFormat { index: u32, offered: String },

    /// The camera stopped delivering frames during capture.
    #[error("camera {index} stopped delivering frames: {reason}")]
    CameraFailed { index: u32, reason: String },

    /// The system's camera list could not be read.
    #[error("cannot list cameras: {reason}")]
    CameraQuery { reason: String },

    /// `--audio-source` named something that is not an audio source.
    #[error(
        "invalid audio source {input:?}: expected mic, mic:N, tone:HZ (20-20000), beep or wav:FILE.wav"
    )]
    InvalidAudioSource { input: String },

    /// A WAV file vchat cannot play as a voice.
    #[error("{path} is not a usable WAV file: {problem}")]
    BadWav { path: PathBuf, problem: String },

    /// A microphone or speaker could not be used.
    #[error("{device}: {problem}")]
    AudioDevice { device: String, problem: String },

    /// The Opus codec refused something (a bug, or a corrupt packet).
    #[error("Opus {step} failed: {reason}")]
    Opus { step: &'static str, reason: String },
}
