//! Video: where pictures come from, how they travel, and how received video is kept.
mod codec;
mod convert;
mod error;
mod options;
mod pattern;
mod picture;
mod y4m;

pub use codec::{Decoder, EncodedFrame, Encoder};
pub use error::MediaError;
pub use options::{Fps, Quality, Size, SourceSpec, MAX_FRAME_HEIGHT, MAX_FRAME_WIDTH, MIN_FRAME_SIDE};
pub use pattern::{draw_test_pattern, read_frame_number, test_pattern, FRAME_NUMBER_BITS};
pub use picture::{CapturedFrame, FrameContent, JpegImage, Picture, PictureFormat};
pub use y4m::{FrameRate, Y4mChroma, Y4mHeader, Y4mReader, Y4mRecorder};
