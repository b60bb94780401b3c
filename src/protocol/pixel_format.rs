//! The pixel formats and codecs a video frame can carry on the wire.
//!
//! Shared vocabulary between the protocol (which validates that a raw
//! payload's length matches its dimensions) and the media layer (which
//! produces and consumes the payloads).

use std::fmt;
use std::str::FromStr;

/// How the payload of a video frame is to be interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Uncompressed, 8 bits per channel, R G B interleaved, rows top to bottom, no padding.
    Rgb24,
    /// Uncompressed planar Y'CbCr 4:2:0 (Y plane, then Cb, then Cr), chroma planes
    /// of `ceil(w/2) x ceil(h/2)`, no padding. Half the bytes of RGB24.
    I420,
    /// A baseline JPEG (JFIF) image.
    Jpeg,
    /// One H.264 (Constrained Baseline) access unit in Annex B byte-stream
    /// form. Unlike the others it is inter-coded: a frame may depend on the
    /// ones before it, so a receiver decodes every frame in order and a
    /// sender skips frames before encoding them, never after.
    H264,
}

impl PixelFormat {
    /// Every format, in the order a peer lists them by default: the
    /// compressed ones first, since they are what fits a real link.
    pub const ALL: [PixelFormat; 4] = [
        PixelFormat::H264,
        PixelFormat::Jpeg,
        PixelFormat::I420,
        PixelFormat::Rgb24,
    ];

    /// The name used on the wire and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::I420 => "i420",
            PixelFormat::Jpeg => "jpeg",
            PixelFormat::H264 => "h264",
        }
    }

    /// Whether frames depend on earlier ones (so none may be lost between
    /// the encoder and the decoder).
    pub fn is_inter_coded(self) -> bool {
        self == PixelFormat::H264
    }

    /// Whether the payload is compressed (its length is not a function of
    /// the picture's size).
    pub fn is_compressed(self) -> bool {
        matches!(self, PixelFormat::Jpeg | PixelFormat::H264)
    }

    /// The format with this exact wire name (see [`PixelFormat::name`]), if
    /// any. Unlike `FromStr`, no aliases and no case folding: the wire is exact.
    pub fn from_wire_name(name: &str) -> Option<Self> {
        PixelFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The exact payload length of an uncompressed frame of this size, or `None`
    /// for compressed formats (whose length is not a function of the size) and
    /// for sizes whose length would overflow `usize`.
    pub fn raw_len(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgb24 => w.checked_mul(h)?.checked_mul(3),
            PixelFormat::I420 => {
                let chroma = w.div_ceil(2).checked_mul(h.div_ceil(2))?;
                w.checked_mul(h)?.checked_add(chroma.checked_mul(2)?)
            }
            PixelFormat::Jpeg | PixelFormat::H264 => None,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that vchat does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pixel format or codec {0:?}: expected h264, jpeg, i420, rgb24 or raw (= rgb24)")]
pub struct UnknownPixelFormat(pub String);

impl FromStr for PixelFormat {
    type Err = UnknownPixelFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "raw" | "rgb24" => Ok(PixelFormat::Rgb24),
            "i420" | "yuv420" => Ok(PixelFormat::I420),
            "jpeg" | "jpg" | "mjpeg" => Ok(PixelFormat::Jpeg),
            "h264" | "avc" => Ok(PixelFormat::H264),
            _ => Err(UnknownPixelFormat(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lengths() {
        assert_eq!(PixelFormat::Rgb24.raw_len(640, 480), Some(640 * 480 * 3));
        assert_eq!(PixelFormat::I420.raw_len(640, 480), Some(640 * 480 * 3 / 2));
        // Odd sizes round the chroma planes up.
        assert_eq!(PixelFormat::I420.raw_len(3, 3), Some(9 + 2 * 4));
        assert_eq!(PixelFormat::Jpeg.raw_len(640, 480), None);
        assert_eq!(PixelFormat::H264.raw_len(640, 480), None);
    }

    #[test]
    fn names_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(f.name().parse::<PixelFormat>(), Ok(f));
        }
        assert_eq!("AVC".parse::<PixelFormat>(), Ok(PixelFormat::H264));
        assert!("vp8".parse::<PixelFormat>().is_err());
    }
}
