//! The desktop window: the peer's video large and letterboxed, your own video
//! as a picture-in-picture, an overlay with who you are talking to and how the
//! call is doing, and keys to control it.
//!
//! - [`compose`] lays out and draws a scene into a pixel buffer (pure, tested).
//! - [`text`] draws the overlay text with a bitmap font.
//! - [`window`] runs the winit event loop and talks to the call.

pub mod compose;
pub mod text;
pub mod window;

pub use compose::RgbImage;
pub use window::{CallState, DisplayState, UiCommand, UiError, UiHandle, WindowLoop};
