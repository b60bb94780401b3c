//! The one interface every video source offers: block until the next frame
//! is due, then hand it over.
//!
//! The call runs a source on its own thread and keeps only the newest frame,
//! so a source's job is simple. This file holds only the trait, so that each
//! source (camera, test pattern, file, the bench's frames) can implement it
//! without depending on the others; `open` picks one from `--source`.

use super::error::MediaError;
use super::picture::CapturedFrame;

/// Something that produces video frames on demand.
pub trait FrameSource: Send {
    /// Blocks until the next frame is due and returns it.
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError>;

    /// One line for logs and the window title, e.g. "test pattern 640x480 at 30 fps".
    fn describe(&self) -> String;
}
