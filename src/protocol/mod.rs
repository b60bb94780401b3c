//! The wire protocol: length-prefixed CBOR messages (see PROTOCOL.md).

mod pixel_format;

pub use pixel_format::{PixelFormat, UnknownPixelFormat};
