//! Opening the source `--source` names, and the sources that are not a
//! camera: the test pattern and Y4M files.
//!
//! Paced sources never burst to catch up after a slow consumer (see
//! `pacer`); the test pattern skips frame numbers instead, as a camera
//! would, so a receiver can see how many frames were dropped.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::camera::CameraSource;
use super::error::MediaError;
use super::options::{Fps, Size, SourceSpec};
use super::pacer::Pacer;
use super::pattern::test_pattern;
use super::picture::{CapturedFrame, FrameContent, Picture, PictureFormat};
use super::source::FrameSource;
use super::y4m::{Y4mChroma, Y4mReader};
use crate::protocol::PixelFormat;

/// Opens the source `spec` names.
///
/// `size` and `fps` apply to the camera (nearest format it offers, frames
/// scaled to `size`) and the test pattern; a Y4M file plays at its own size
/// and frame rate. `codec` is what the frames will be encoded as: a camera
/// prefers MJPEG formats when it is [`PixelFormat::Jpeg`], so frames can be
/// passed through without re-encoding.
pub fn open_source(
    spec: &SourceSpec,
    size: Size,
    fps: Fps,
    codec: PixelFormat,
) -> Result<Box<dyn FrameSource>, MediaError> {
    Ok(match spec {
        SourceSpec::Camera { index } => Box::new(CameraSource::open(
            *index,
            size,
            fps,
            codec == PixelFormat::Jpeg,
        )?),
        SourceSpec::TestPattern => Box::new(TestPatternSource::new(size, fps)),
        SourceSpec::Flash => Box::new(FlashSource::new(size, fps)?),
        SourceSpec::Y4mFile(path) => Box::new(Y4mFileSource::open(path.clone())?),
    })
}

/// The synthetic test pattern (see `pattern`), paced at `fps`.
#[derive(Debug)]
pub struct TestPatternSource {
    size: Size,
    fps: Fps,
    pacer: Pacer,
    next_number: u64,
}

impl TestPatternSource {
    pub fn new(size: Size, fps: Fps) -> Self {
        TestPatternSource {
            size,
            fps,
            pacer: Pacer::new(Duration::from_secs(1) / fps.get()),
            next_number: 0,
        }
    }
}

impl FrameSource for TestPatternSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        let missed = self.pacer.wait();
        let number = self.next_number + missed;
        self.next_number = number + 1;
        let picture = test_pattern(number, self.size.width(), self.size.height())?;
        Ok(CapturedFrame {
            captured_at: Instant::now(),
            sequence: number,
            content: FrameContent::Picture(picture),
        })
    }

    fn describe(&self) -> String {
        format!("test pattern {} at {} fps", self.size, self.fps)
    }
}

/// Black frames, and a white one at the start of every second of the
/// system clock (`--source flash`): frames are paced on a grid anchored at
/// a whole second, so the white frame's capture time is the second itself,
/// the instant `--audio-source beep` starts its beep.
#[derive(Debug)]
pub struct FlashSource {
    fps: Fps,
    pacer: Pacer,
    next_number: u64,
    black: Picture,
    white: Picture,
}

impl FlashSource {
    pub fn new(size: Size, fps: Fps) -> Result<Self, MediaError> {
        let (width, height) = (size.width(), size.height());
        let black = Picture::black(width, height, PictureFormat::Rgb24)?;
        let white = Picture::new(
            width,
            height,
            PictureFormat::Rgb24,
            vec![255; black.data().len()],
        )?;
        // The next whole second of the system clock, as an Instant.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let to_second =
            Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()));
        Ok(FlashSource {
            fps,
            pacer: Pacer::starting_at(
                Duration::from_secs(1) / fps.get(),
                Instant::now() + to_second,
            ),
            next_number: 0,
            black,
            white,
        })
    }
}

impl FrameSource for FlashSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        let missed = self.pacer.wait();
        let number = self.next_number + missed;
        self.next_number = number + 1;
        // Slot 0 is a whole second, and every fps-th slot after it.
        let flash = number.is_multiple_of(u64::from(self.fps.get()));
        let picture = if flash { &self.white } else { &self.black };
        Ok(CapturedFrame {
            captured_at: Instant::now(),
            sequence: number,
            content: FrameContent::Picture(picture.clone()),
        })
    }

    fn describe(&self) -> String {
        format!("a white flash every second at {} fps", self.fps)
    }
}

/// A YUV4MPEG2 file played at its own frame rate, looping at the end.
pub struct Y4mFileSource {
    path: PathBuf,
    reader: Y4mReader<BufReader<File>>,
    pacer: Pacer,
    sequence: u64,
}

impl std::fmt::Debug for Y4mFileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Y4mFileSource({})", self.path.display())
    }
}

impl Y4mFileSource {
    /// Opens `path` and checks that its first frame reads, so a bad file fails
    /// here rather than after the call has started.
    pub fn open(path: PathBuf) -> Result<Self, MediaError> {
        let mut reader = Y4mReader::open(&path)?;
        if reader.read_frame_planes()?.is_none() {
            return Err(MediaError::MalformedY4m {
                path,
                problem: "it contains no frames".to_owned(),
            });
        }
        reader.rewind()?;
        let rate = reader.header().frame_rate;
        let period =
            Duration::from_secs_f64(f64::from(rate.denominator) / f64::from(rate.numerator));
        Ok(Y4mFileSource {
            path,
            reader,
            pacer: Pacer::new(period),
            sequence: 0,
        })
    }
}

impl FrameSource for Y4mFileSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        self.pacer.wait();
        let mut picture = Picture::empty(PictureFormat::I420);
        if !self.reader.read_frame_into(&mut picture)? {
            self.reader.rewind()?;
            if !self.reader.read_frame_into(&mut picture)? {
                return Err(MediaError::MalformedY4m {
                    path: self.path.clone(),
                    problem: "it contains no frames".to_owned(),
                });
            }
        }
        self.sequence += 1;
        Ok(CapturedFrame {
            captured_at: Instant::now(),
            sequence: self.sequence,
            content: FrameContent::Picture(picture),
        })
    }

    fn describe(&self) -> String {
        let header = self.reader.header();
        let chroma = match header.chroma {
            Y4mChroma::C420 => "4:2:0",
            Y4mChroma::C422 => "4:2:2",
            Y4mChroma::C444 => "4:4:4",
        };
        format!(
            "file {} ({}x{} {chroma} at {:.2} fps, looping)",
            self.path.display(),
            header.width,
            header.height,
            header.frame_rate.as_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pattern::read_frame_number;

    #[test]
    fn test_pattern_source_numbers_frames() {
        let mut source = TestPatternSource::new(Size::new(64, 32).unwrap(), Fps::new(120).unwrap());
        assert_eq!(source.describe(), "test pattern 64x32 at 120 fps");
        let mut previous = None;
        for _ in 0..3 {
            let frame = source.next_frame().unwrap();
            let FrameContent::Picture(picture) = &frame.content else {
                panic!("not a picture")
            };
            assert_eq!(read_frame_number(picture), Some(frame.sequence));
            if let Some(previous) = previous {
                assert!(frame.sequence > previous);
            }
            previous = Some(frame.sequence);
        }
    }
}
