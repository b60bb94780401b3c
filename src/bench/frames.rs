//! Frame sources for `vchat bench`: pictures generated once before the run
//! and handed out again and again, so capture costs nothing and the bench
//! measures the call's own path (encode, protocol, TLS, decode).
//!
//! The pictures are shared (`bytes::Bytes`), so handing one out costs a
//! reference count, and a raw frame travels into the message uncopied, as a
//! camera's freshly captured buffer would.

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::media::{
    test_pattern, CapturedFrame, Encoder, FrameContent, FrameSource, MediaError, Pacer, Picture,
    PictureFormat, Quality, Size, MIN_FRAME_SIDE,
};
use crate::protocol::PixelFormat;

/// Distinct pictures cycled through: enough that JPEG encodes changing
/// content (the test pattern's moving parts), few enough to generate in well
/// under a second even at 1920x1080.
const DISTINCT_FRAMES: u64 = 8;

/// The payloads a vchat run sends, in order: each pre-generated frame
/// encoded as `codec`. The bare reference sends these same bytes.
pub fn wire_payloads(
    size: Size,
    codec: PixelFormat,
    quality: Quality,
) -> Result<Vec<Bytes>, MediaError> {
    let mut source = BenchSource::new(size, None)?;
    let mut encoder = Encoder::new();
    (0..DISTINCT_FRAMES)
        .map(|_| {
            let frame = source.next_frame()?;
            Ok(encoder.encode_to_bytes(frame, codec, quality)?.payload)
        })
        .collect()
}

/// How long the silent peer's source sleeps per frame: short, because the
/// media thread notices a hang-up only between frames.
const IDLE_PERIOD: Duration = Duration::from_millis(20);

/// Pre-generated test-pattern frames, unpaced (as fast as they are taken) or
/// paced at a fixed period like a camera.
#[derive(Debug)]
pub struct BenchSource {
    size: Size,
    frames: Vec<Picture>,
    /// `None` when unpaced.
    pacer: Option<Pacer>,
    sequence: u64,
}

impl BenchSource {
    /// `period`: `None` for unpaced (throughput), else one frame per period
    /// (latency), skipping slots rather than bursting when the caller is late.
    pub fn new(size: Size, period: Option<Duration>) -> Result<Self, MediaError> {
        let (width, height) = (size.width(), size.height());
        let frames = (0..DISTINCT_FRAMES)
            .map(|n| {
                let picture = test_pattern(n, width, height)?;
                Picture::from_shared(width, height, PictureFormat::Rgb24, picture.into_shared())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BenchSource {
            size,
            frames,
            pacer: period.map(Pacer::new),
            sequence: 0,
        })
    }
}

impl FrameSource for BenchSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        let missed = self.pacer.as_mut().map_or(0, Pacer::wait);
        self.sequence += missed;
        let index = (self.sequence % DISTINCT_FRAMES) as usize;
        let picture =
            self.frames
                .get(index)
                .cloned()
                .ok_or_else(|| MediaError::InvalidPicture {
                    problem: "no pre-generated frames".to_owned(),
                })?;
        let frame = CapturedFrame {
            captured_at: Instant::now(),
            sequence: self.sequence,
            content: FrameContent::Picture(picture),
        };
        self.sequence += 1;
        Ok(frame)
    }

    fn describe(&self) -> String {
        match &self.pacer {
            Some(pacer) => format!(
                "bench frames {} at {:.0} fps",
                self.size,
                1.0 / pacer.period().as_secs_f64()
            ),
            None => format!("bench frames {} unpaced", self.size),
        }
    }
}

/// The receiving peer's source: a tiny frame now and then. The bench turns
/// that peer's camera off, so these are never encoded or sent; the source
/// only keeps the media thread alive and responsive to hang-up.
#[derive(Debug)]
pub struct IdleSource {
    picture: Picture,
    sequence: u64,
}

impl IdleSource {
    pub fn new() -> Result<Self, MediaError> {
        Ok(IdleSource {
            picture: Picture::black(MIN_FRAME_SIDE, MIN_FRAME_SIDE, PictureFormat::Rgb24)?,
            sequence: 0,
        })
    }
}

impl FrameSource for IdleSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        thread::sleep(IDLE_PERIOD);
        self.sequence += 1;
        Ok(CapturedFrame {
            captured_at: Instant::now(),
            sequence: self.sequence,
            content: FrameContent::Picture(self.picture.clone()),
        })
    }

    fn describe(&self) -> String {
        "idle (camera off)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::read_frame_number;

    #[test]
    fn unpaced_frames_cycle_the_pregenerated_pictures() {
        let size = Size::new(160, 120).unwrap();
        let mut source = BenchSource::new(size, None).unwrap();
        let first = source.next_frame().unwrap();
        for _ in 1..DISTINCT_FRAMES {
            source.next_frame().unwrap();
        }
        let again = source.next_frame().unwrap();
        assert_eq!(again.sequence, DISTINCT_FRAMES);
        let (FrameContent::Picture(a), FrameContent::Picture(b)) = (&first.content, &again.content)
        else {
            panic!("not pictures")
        };
        assert_eq!(a.data().as_ptr(), b.data().as_ptr(), "shared, not copied");
        assert_eq!(read_frame_number(a), Some(0));
    }

    #[test]
    fn paced_frames_skip_rather_than_burst() {
        let size = Size::new(16, 16).unwrap();
        let period = Duration::from_millis(2);
        let mut source = BenchSource::new(size, Some(period)).unwrap();
        source.next_frame().unwrap();
        // As if the consumer had been away for ten periods.
        source.pacer = Some(Pacer::starting_at(
            period,
            Instant::now() - Duration::from_millis(20),
        ));
        let late = source.next_frame().unwrap();
        assert!(late.sequence >= 10, "{}", late.sequence);
        // The missed slots were skipped once, not carried over to the next frame.
        let next = source.next_frame().unwrap();
        assert!(next.sequence > late.sequence);
        assert!(next.sequence < late.sequence + 10, "{}", next.sequence);
    }
}
