//! Media receive: the thread that decodes the peer's video for the window
//! and the recording.
//!
//! Why a thread: decoding is CPU work that must not stall the reader (which
//! also carries pings and bye). It takes only the newest frame from the
//! incoming slot, so a slow decoder costs frames, not delay, and it reuses
//! its buffers frame after frame. H.264 frames are not dropped there (the
//! reader waits for the slot); when frames were lost anyway (the sender's
//! numbering has a gap: a link dropped, or the sender gave up on one) the
//! decoder waits for a keyframe and asks the peer for one. It checks the call's cancellation token
//! whenever the slot is empty, and finishes the recording before it ends.
//!
//! Lip sync: a decoded picture waits (up to 300 ms, in a small queue, so
//! decoding goes on meanwhile) until the voice the ear hears reaches its
//! capture time (`call/voice.rs`); with no voice playing it goes up at once.
//! The recording takes each picture as it goes up, noting the audio
//! output's sample count then (`FRAME XAUDIO=N`), so `--record` and
//! `--record-audio` line up and lip sync can be measured from the files
//! (tests/call_lip_sync.rs).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use super::pipeline::{Shared, THREAD_POLL};
use super::stats::{unix_micros, Counters};
use super::voice::SYNC_AIM;
use super::CallError;
use crate::media::{Decoder, MediaError, OwnedEncodedPicture, Picture, PictureFormat, Y4mRecorder};
use crate::ui::{RgbImage, UiHandle};

/// Decodes the newest received frame for the window and the recorder.
pub(super) fn spawn_decoder_thread(
    shared: Arc<Shared>,
    mut recorder: Option<Y4mRecorder>,
    ui: UiHandle,
    failures: UnboundedSender<CallError>,
    want_keyframe: impl Fn() + Send + 'static,
) -> Result<JoinHandle<Option<(PathBuf, u64)>>, CallError> {
    std::thread::Builder::new()
        .name("vchat-decode".into())
        .spawn(move || {
            let mut decoder = Decoder::new();
            // Reused frame after frame; handed to the window (and replaced) only when there is one.
            let mut shown = Picture::empty(PictureFormat::Rgb24);
            // The bytes last handed to the window, taken back for decoding
            // once the window shows a newer frame and nothing else holds them.
            let mut on_screen: Option<Bytes> = None;
            // The sender's frame numbers only grow, across reconnects too
            // (its media thread outlives the link): a frame not newer than
            // the last one taken is one we already have, never shown or
            // recorded twice.
            let mut last_seq: Option<u64> = None;
            let mut held = Held::default();
            let result = (|| {
                loop {
                    // Pictures held for the voice go up when it reaches them.
                    let wait =
                        held.present(&shared, &ui, &mut on_screen, &mut shown, &mut recorder)?;
                    let Some(next) = shared.incoming.take_blocking(wait) else {
                        break;
                    };
                    let Some((video, _received)) = next else {
                        if shared.token.is_cancelled() {
                            break;
                        }
                        continue;
                    };
                    if last_seq.is_some_and(|last| video.seq <= last) {
                        continue;
                    }
                    if last_seq.is_some_and(|last| video.seq != last + 1) {
                        decoder.lost_frames();
                    }
                    last_seq = Some(video.seq);
                    let picture = OwnedEncodedPicture {
                        format: video.format,
                        width: video.width,
                        height: video.height,
                        payload: video.payload,
                    };
                    // Recorded when it goes up, so the recording says
                    // where the voice was at that moment: decoded into a
                    // picture of its own that waits with it.
                    let mut record = recorder.as_ref().map(|_| held.spare_picture());
                    // Raw RGB24 is shown from the received bytes, uncopied.
                    match decoder.decode_for_show_and_record(&picture, &mut shown, record.as_mut())
                    {
                        Ok(()) => {}
                        Err(MediaError::AwaitingKeyframe) => {
                            Counters::add(&shared.counters.awaiting_keyframe, 1);
                            want_keyframe();
                            held.give_back(record);
                            continue;
                        }
                        Err(e) => return Err(CallError::PeerSentBadVideo(e)),
                    }
                    let now = unix_micros(SystemTime::now());
                    // On one clock: the peer's may be off (call/clock.rs).
                    let captured = shared
                        .counters
                        .peer_time_on_our_clock(video.capture_time_us);
                    let latency = Duration::from_micros(now.saturating_sub(captured));
                    shared.counters.record_latency(latency);
                    shared.counters.record_decoded(captured, now);
                    if Counters::get(&shared.counters.frames_shown) == 0 {
                        // Time to first picture, as a person waits for it.
                        tracing::info!(
                            "first picture from the peer, {} ms after the call connected",
                            shared.started.elapsed().as_millis()
                        );
                    }
                    Counters::add(&shared.counters.frames_shown, 1);
                    let image = ui.has_window().then(|| {
                        let picture =
                            std::mem::replace(&mut shown, Picture::empty(PictureFormat::Rgb24));
                        let (width, height) = (picture.width(), picture.height());
                        Arc::new(RgbImage {
                            width,
                            height,
                            pixels: picture.into_shared(),
                        })
                    });
                    held.hold(video.capture_time_us, image, record);
                }
                // Pictures still waiting for the voice are kept too.
                if let Some(recorder) = recorder.as_mut() {
                    held.record_all(&shared, recorder)?;
                }
                match recorder.take() {
                    Some(rec) => {
                        let path = rec.path().to_owned();
                        let frames = rec.finish().map_err(CallError::Media)?;
                        Ok(Some((path, frames)))
                    }
                    None => Ok(None),
                }
            })();
            match result {
                Ok(recorded) => recorded,
                Err(e) => {
                    let _ = failures.send(e);
                    None
                }
            }
        })
        .map_err(|e| CallError::Internal(format!("cannot start the decoder thread: {e}")))
}

/// The longest a picture waits for the voice: beyond this the voice is
/// behind for another reason (a stall), and the picture goes up anyway.
const MAX_HOLD: Duration = Duration::from_millis(300);

/// Most pictures waiting for the voice (300 ms at 30 fps and then some).
const MAX_HELD: usize = 16;

/// Decoded pictures waiting for the voice to reach them (lip sync,
/// call/voice.rs): a picture goes up when the audio clock, the peer's
/// capture time of what our ear hears, is within [`SYNC_AIM`] of its own
/// capture time. With no voice playing, pictures go up at once.
#[derive(Default)]
struct Held {
    pictures: VecDeque<HeldPicture>,
    /// Recording pictures already written, to decode into again.
    spare: Vec<Picture>,
}

/// A decoded picture waiting to go up: its capture time, since when it
/// waits, the window's copy and the recording's.
type HeldPicture = (u64, Instant, Option<Arc<RgbImage>>, Option<Picture>);

impl Held {
    fn hold(&mut self, capture_us: u64, image: Option<Arc<RgbImage>>, record: Option<Picture>) {
        if self.pictures.len() == MAX_HELD {
            self.pictures.pop_front();
        }
        self.pictures
            .push_back((capture_us, Instant::now(), image, record));
    }

    /// A picture to decode the next frame's recording into.
    fn spare_picture(&mut self) -> Picture {
        self.spare
            .pop()
            .unwrap_or_else(|| Picture::empty(PictureFormat::I420))
    }

    /// Keeps a written recording picture's memory for the next frame.
    fn give_back(&mut self, picture: Option<Picture>) {
        if let Some(picture) = picture.filter(|_| self.spare.len() <= MAX_HELD) {
            self.spare.push(picture);
        }
    }

    /// Writes every held picture to the recording (the call is ending).
    fn record_all(&mut self, shared: &Shared, recorder: &mut Y4mRecorder) -> Result<(), CallError> {
        let at = Counters::get(&shared.voice.samples_played);
        for (capture, _, _, record) in self.pictures.drain(..) {
            if let Some(picture) = record {
                recorder
                    .write_at_shown(&picture, capture, at)
                    .map_err(CallError::Media)?;
            }
        }
        Ok(())
    }

    /// Shows the newest picture that is due (older due ones are passed
    /// over); returns how long until the next one is, at most a poll.
    fn present(
        &mut self,
        shared: &Shared,
        ui: &UiHandle,
        on_screen: &mut Option<Bytes>,
        shown: &mut Picture,
        recorder: &mut Option<Y4mRecorder>,
    ) -> Result<Duration, CallError> {
        let clock = shared.voice.audio_clock();
        let aim = SYNC_AIM.as_micros() as u64;
        let mut due = None;
        while let Some(&(capture, held_at, _, _)) = self.pictures.front() {
            let ready = match clock {
                None => true,
                Some(heard) => capture <= heard + aim || held_at.elapsed() >= MAX_HOLD,
            };
            if !ready {
                break;
            }
            due = self.pictures.pop_front();
            // Every due picture is recorded, also one passed over on screen.
            if let (Some(recorder), Some((capture, _, _, record))) =
                (recorder.as_mut(), due.as_mut())
            {
                if let Some(picture) = record.take() {
                    let at = Counters::get(&shared.voice.samples_played);
                    recorder
                        .write_at_shown(&picture, *capture, at)
                        .map_err(CallError::Media)?;
                    self.give_back(Some(picture));
                }
            }
        }
        if let Some((capture, _, image, _)) = due {
            shared.voice.picture_shown(capture);
            if let Some(image) = image {
                let previous = on_screen.replace(image.pixels.clone());
                ui.update(|s| s.peer_picture = Some(image));
                if let Some(buffer) = previous.and_then(reclaim) {
                    *shown = Picture::empty_reusing(PictureFormat::Rgb24, buffer);
                }
            }
        }
        Ok(match (self.pictures.front(), clock) {
            (Some(&(capture, held_at, _, _)), Some(heard)) => {
                let until_heard = Duration::from_micros(capture.saturating_sub(heard + aim));
                let until_limit = MAX_HOLD.saturating_sub(held_at.elapsed());
                until_heard
                    .min(until_limit)
                    .clamp(Duration::from_millis(1), THREAD_POLL)
            }
            (Some(_), None) => Duration::from_millis(1),
            (None, _) => THREAD_POLL,
        })
    }
}

/// The memory behind `bytes` as an empty vector, if nothing else holds it
/// (the window let go of it and it is not a slice of a receive buffer).
fn reclaim(bytes: Bytes) -> Option<Vec<u8>> {
    let mut unique = bytes.try_into_mut().ok()?;
    // Emptied first, so turning it into a vector copies nothing.
    unique.clear();
    Some(Vec::from(unique))
}
