//! Frame sources for `vchat bench`: pictures generated once before the run
//! and handed out again and again, so capture costs nothing and the bench
//! measures the call's own path (encode, protocol, TLS, decode).
//!
//! The pictures are shared (`bytes::Bytes`), so handing one out costs a
//! reference count, and a raw frame travels into the message uncopied, as a
//! camera's freshly captured buffer would.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
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
    let mut source = BenchSource::new(size, Pace::Unpaced)?;
    let mut encoder = Encoder::new();
    (0..DISTINCT_FRAMES)
        .map(|_| {
            let frame = source.next_frame()?;
            let encoded = encoder.encode_to_bytes(frame, codec, quality)?;
            let encoded = encoded.ok_or_else(|| MediaError::H264Encode {
                reason: "the encoder skipped a bench frame".into(),
            })?;
            Ok(encoded.payload)
        })
        .collect()
}

/// How long the silent peer's source sleeps per frame: short, because the
/// media thread notices a hang-up only between frames.
const IDLE_PERIOD: Duration = Duration::from_millis(20);

/// How long the throughput source waits for the link before making a frame
/// anyway: the link takes nothing while it is down or the call is ending.
const LINK_PATIENCE: Duration = Duration::from_millis(200);

/// The sending link's progress, which the throughput source waits on: the
/// newest of our frame numbers the link took to send. Fed by the call's
/// [`crate::call::VideoTakenHook`], it closes the loop of a throughput run
/// through the call itself: the next frame is made while the link writes
/// the one before, so none waits long and none is made in vain.
#[derive(Debug, Default)]
pub struct LinkTook {
    newest: Mutex<Option<u64>>,
    changed: Condvar,
}

impl LinkTook {
    /// The link took our frame `sequence` to send.
    pub fn record(&self, sequence: u64) {
        let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        *newest = Some(newest.map_or(sequence, |n| n.max(sequence)));
        drop(newest);
        self.changed.notify_all();
    }

    /// Waits until the link has taken every frame before `sequence` (the
    /// newest-frame slot is empty), or [`LINK_PATIENCE`] has passed.
    fn wait_to_make(&self, sequence: u64) {
        let newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .changed
            .wait_timeout_while(newest, LINK_PATIENCE, |newest| {
                sequence > newest.map_or(0, |n| n + 1)
            })
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// When a [`BenchSource`] hands out its next frame.
#[derive(Debug)]
pub enum Pace {
    /// At once (encoding the wire payloads up front).
    Unpaced,
    /// One frame per period, like a camera (latency runs); late slots are
    /// skipped rather than burst.
    Every(Duration),
    /// As soon as the link has taken the frame before (throughput runs).
    AsTheLinkTakes(Arc<LinkTook>),
}

/// Pre-generated test-pattern frames, handed out as [`Pace`] says.
#[derive(Debug)]
pub struct BenchSource {
    size: Size,
    frames: Vec<Picture>,
    pace: Pacing,
    sequence: u64,
}

#[derive(Debug)]
enum Pacing {
    Unpaced,
    Clock(Pacer),
    AsTheLinkTakes(Arc<LinkTook>),
}

impl BenchSource {
    pub fn new(size: Size, pace: Pace) -> Result<Self, MediaError> {
        let (width, height) = (size.width(), size.height());
        let frames = (0..DISTINCT_FRAMES)
            .map(|n| {
                let picture = test_pattern(n, width, height)?;
                Picture::from_shared(width, height, PictureFormat::Rgb24, picture.into_shared())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pace = match pace {
            Pace::Unpaced => Pacing::Unpaced,
            Pace::Every(period) => Pacing::Clock(Pacer::new(period)),
            Pace::AsTheLinkTakes(link) => Pacing::AsTheLinkTakes(link),
        };
        Ok(BenchSource {
            size,
            frames,
            pace,
            sequence: 0,
        })
    }
}

impl FrameSource for BenchSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        match &mut self.pace {
            Pacing::Unpaced => {}
            Pacing::Clock(pacer) => self.sequence += pacer.wait(),
            Pacing::AsTheLinkTakes(link) => link.wait_to_make(self.sequence),
        }
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
        match &self.pace {
            Pacing::Unpaced => format!("bench frames {} unpaced", self.size),
            Pacing::Clock(pacer) => format!(
                "bench frames {} at {:.0} fps",
                self.size,
                1.0 / pacer.period().as_secs_f64()
            ),
            Pacing::AsTheLinkTakes(_) => {
                format!("bench frames {} as fast as the link takes them", self.size)
            }
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
        let mut source = BenchSource::new(size, Pace::Unpaced).unwrap();
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
        // Long enough that a pause of this thread between two frames (on
        // a loaded machine) is not itself ten periods.
        let period = Duration::from_millis(20);
        let mut source = BenchSource::new(size, Pace::Every(period)).unwrap();
        source.next_frame().unwrap();
        // As if the consumer had been away for ten periods.
        source.pace = Pacing::Clock(Pacer::starting_at(period, Instant::now() - period * 10));
        let late = source.next_frame().unwrap();
        assert!(late.sequence >= 10, "{}", late.sequence);
        // The missed slots were skipped once, not carried over to the next frame.
        let next = source.next_frame().unwrap();
        assert!(next.sequence > late.sequence);
        assert!(next.sequence < late.sequence + 10, "{}", next.sequence);
    }

    #[test]
    fn the_throughput_source_waits_until_the_link_took_the_frame_before() {
        let size = Size::new(16, 16).unwrap();
        let link = Arc::new(LinkTook::default());
        let mut source = BenchSource::new(size, Pace::AsTheLinkTakes(link.clone())).unwrap();
        assert_eq!(source.next_frame().unwrap().sequence, 0);
        // Frame 0 not taken yet: frame 1 waits for it.
        let waiter = std::thread::spawn(move || source.next_frame().unwrap().sequence);
        link.record(0);
        assert_eq!(waiter.join().unwrap(), 1);
    }

    #[test]
    fn a_frame_the_link_never_takes_does_not_stall_the_throughput_source() {
        let size = Size::new(16, 16).unwrap();
        let link = Arc::new(LinkTook::default());
        let mut source = BenchSource::new(size, Pace::AsTheLinkTakes(link.clone())).unwrap();
        source.next_frame().unwrap();
        source.next_frame().unwrap();
        // Frame 0 was replaced in the slot by 1, which the link took.
        link.record(1);
        let started = Instant::now();
        assert_eq!(source.next_frame().unwrap().sequence, 2);
        assert!(started.elapsed() < LINK_PATIENCE, "no wait: 1 was taken");
        // Nothing more taken: the source waits, but not for ever.
        let started = Instant::now();
        assert_eq!(source.next_frame().unwrap().sequence, 3);
        assert!(started.elapsed() >= LINK_PATIENCE);
    }
}
