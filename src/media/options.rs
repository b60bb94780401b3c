//! The command-line vocabulary of video: `--source`, `--size`, `--fps` and `--quality`.
//!
//! Each value is parsed once, at the edge, into a type that cannot hold an
//! invalid value ("parse, don't validate"), so the rest of the media layer
//! never re-checks limits.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::error::MediaError;
// The largest size is the protocol's: a frame we capture must fit a message.
use crate::protocol::limits::{MAX_HEIGHT, MAX_WIDTH};

/// Smallest accepted frame side: below this the test pattern's frame-number
/// code and JPEG's 16x16 macroblocks stop making sense.
pub const MIN_FRAME_SIDE: u32 = 16;

/// Frame dimensions in pixels, within [`MIN_FRAME_SIDE`]..=[`MAX_WIDTH`] x [`MAX_HEIGHT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    width: u32,
    height: u32,
}

impl Size {
    /// A size checked against the limits.
    pub fn new(width: u32, height: u32) -> Result<Self, MediaError> {
        let input = format!("{width}x{height}");
        check_side(&input, "width", width, MAX_WIDTH)?;
        check_side(&input, "height", height, MAX_HEIGHT)?;
        Ok(Size { width, height })
    }

    pub fn width(self) -> u32 {
        self.width
    }

    pub fn height(self) -> u32 {
        self.height
    }
}

fn check_side(input: &str, side: &str, value: u32, max: u32) -> Result<(), MediaError> {
    if (MIN_FRAME_SIDE..=max).contains(&value) {
        Ok(())
    } else {
        Err(MediaError::InvalidSize {
            input: input.to_owned(),
            problem: format!("{side} {value} is outside {MIN_FRAME_SIDE}..={max}"),
        })
    }
}

impl Default for Size {
    /// 640x480: every webcam offers it and raw RGB at this size stays under 1 MB.
    fn default() -> Self {
        Size {
            width: 640,
            height: 480,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = MediaError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |problem: &str| MediaError::InvalidSize {
            input: input.to_owned(),
            problem: problem.to_owned(),
        };
        let (width, height) = input
            .trim()
            .split_once(['x', 'X'])
            .ok_or_else(|| invalid("missing the `x` between width and height"))?;
        let width: u32 = width
            .parse()
            .map_err(|_| invalid("width is not a whole number"))?;
        let height: u32 = height
            .parse()
            .map_err(|_| invalid("height is not a whole number"))?;
        Size::new(width, height).map_err(|_| {
            invalid(&format!(
                "each side must be at least {MIN_FRAME_SIDE}, width at most {MAX_WIDTH} \
                 and height at most {MAX_HEIGHT}"
            ))
        })
    }
}

/// Frames per second asked of a source, 1..=120.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fps(u32);

impl Fps {
    /// The highest rate: 120 Hz displays exist; beyond that a frame-by-frame call is pointless.
    pub const MAX: u32 = 120;

    pub fn new(frames_per_second: u32) -> Result<Self, MediaError> {
        if (1..=Self::MAX).contains(&frames_per_second) {
            Ok(Fps(frames_per_second))
        } else {
            Err(MediaError::InvalidFps {
                input: frames_per_second.to_string(),
            })
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Fps {
    /// 30: what webcams deliver at their common sizes.
    fn default() -> Self {
        Fps(30)
    }
}

impl fmt::Display for Fps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Fps {
    type Err = MediaError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || MediaError::InvalidFps {
            input: input.to_owned(),
        };
        let value: u32 = input.trim().parse().map_err(|_| invalid())?;
        Fps::new(value).map_err(|_| invalid())
    }
}

/// JPEG quality, 1..=100 (the libjpeg scale that jpeg-encoder follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quality(u8);

impl Quality {
    pub fn new(quality: u8) -> Result<Self, MediaError> {
        if (1..=100).contains(&quality) {
            Ok(Quality(quality))
        } else {
            Err(MediaError::InvalidQuality {
                input: quality.to_string(),
            })
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Quality {
    /// 80: visually clean for faces and text at about a tenth of the raw size.
    fn default() -> Self {
        Quality(80)
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Quality {
    type Err = MediaError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || MediaError::InvalidQuality {
            input: input.to_owned(),
        };
        let value: u8 = input.trim().parse().map_err(|_| invalid())?;
        Quality::new(value).map_err(|_| invalid())
    }
}

/// Where outgoing video comes from (`--source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A camera by index (`camera` is index 0).
    Camera { index: u32 },
    /// The synthetic, deterministic test pattern.
    TestPattern,
    /// Black, with one white frame at the start of every second of the
    /// clock: with `--audio-source beep`, a picture and a sound made at the
    /// same instant, for measuring lip sync.
    Flash,
    /// A YUV4MPEG2 file, played at its own frame rate, looping.
    Y4mFile(PathBuf),
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Camera { index } => write!(f, "camera:{index}"),
            SourceSpec::TestPattern => f.write_str("test"),
            SourceSpec::Flash => f.write_str("flash"),
            SourceSpec::Y4mFile(path) => write!(f, "{}", path.display()),
        }
    }
}

impl FromStr for SourceSpec {
    type Err = MediaError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || MediaError::InvalidSource {
            input: input.to_owned(),
        };
        match input {
            "camera" => return Ok(SourceSpec::Camera { index: 0 }),
            "test" => return Ok(SourceSpec::TestPattern),
            "flash" => return Ok(SourceSpec::Flash),
            _ => {}
        }
        if let Some(index) = input.strip_prefix("camera:") {
            let index = index.parse().map_err(|_| invalid())?;
            return Ok(SourceSpec::Camera { index });
        }
        let is_y4m = std::path::Path::new(input)
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("y4m"));
        if is_y4m {
            Ok(SourceSpec::Y4mFile(PathBuf::from(input)))
        } else {
            Err(invalid())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_within_limits() {
        assert_eq!(
            "1280x720".parse::<Size>().unwrap(),
            Size::new(1280, 720).unwrap()
        );
        assert_eq!("16X16".parse::<Size>().unwrap(), Size::new(16, 16).unwrap());
        assert_eq!(
            "3840x2160".parse::<Size>().unwrap().to_string(),
            "3840x2160"
        );
        // Odd sizes are legal: I420 rounds its chroma planes up.
        assert!("641x481".parse::<Size>().is_ok());
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        for (input, needle) in [
            ("1280", "missing the `x`"),
            ("x720", "width is not a whole number"),
            ("1280x", "height is not a whole number"),
            ("-5x10", "width is not a whole number"),
            ("15x100", "at least 16"),
            ("3841x2160", "width at most 3840"),
            ("1920x2161", "height at most 2160"),
            ("0x0", "at least 16"),
        ] {
            let message = input.parse::<Size>().unwrap_err().to_string();
            assert!(message.contains(needle), "{input}: {message}");
            assert!(message.contains("16x16 to 3840x2160"), "{input}: {message}");
        }
    }

    #[test]
    fn fps_and_quality_limits() {
        assert_eq!("1".parse::<Fps>().unwrap().get(), 1);
        assert_eq!("120".parse::<Fps>().unwrap().get(), 120);
        for bad in ["0", "121", "29.97", "fast", ""] {
            let message = bad.parse::<Fps>().unwrap_err().to_string();
            assert!(message.contains("1 to 120"), "{message}");
        }
        assert_eq!("100".parse::<Quality>().unwrap().get(), 100);
        for bad in ["0", "101", "300", "high"] {
            let message = bad.parse::<Quality>().unwrap_err().to_string();
            assert!(message.contains("1 (smallest) to 100"), "{message}");
        }
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            "camera".parse::<SourceSpec>().unwrap(),
            SourceSpec::Camera { index: 0 }
        );
        assert_eq!(
            "camera:2".parse::<SourceSpec>().unwrap(),
            SourceSpec::Camera { index: 2 }
        );
        assert_eq!(
            "test".parse::<SourceSpec>().unwrap(),
            SourceSpec::TestPattern
        );
        assert_eq!(
            "clips/a b.Y4M".parse::<SourceSpec>().unwrap(),
            SourceSpec::Y4mFile(PathBuf::from("clips/a b.Y4M"))
        );
        for bad in [
            "camera:",
            "camera:-1",
            "camera:one",
            "webcam",
            "movie.mp4",
            "",
            "y4m",
        ] {
            let message = bad.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(message.contains("expected `camera`"), "{bad}: {message}");
        }
    }
}
