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

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use super::pipeline::{Shared, THREAD_POLL};
use super::stats::{unix_micros, Counters};
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
            let mut for_record = Picture::empty(PictureFormat::I420);
            // The bytes last handed to the window, taken back for decoding
            // once the window shows a newer frame and nothing else holds them.
            let mut on_screen: Option<Bytes> = None;
            // The sender's frame numbers only grow, across reconnects too
            // (its media thread outlives the link): a frame not newer than
            // the last one taken is one we already have, never shown or
            // recorded twice.
            let mut last_seq: Option<u64> = None;
            let result = (|| {
                while let Some(next) = shared.incoming.take_blocking(THREAD_POLL) {
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
                    // Raw RGB24 is shown from the received bytes, uncopied.
                    let record_into = recorder.as_ref().map(|_| &mut for_record);
                    match decoder.decode_for_show_and_record(&picture, &mut shown, record_into) {
                        Ok(()) => {}
                        Err(MediaError::AwaitingKeyframe) => {
                            Counters::add(&shared.counters.awaiting_keyframe, 1);
                            want_keyframe();
                            continue;
                        }
                        Err(e) => return Err(CallError::PeerSentBadVideo(e)),
                    }
                    if let Some(recorder) = recorder.as_mut() {
                        recorder
                            .write_at(&for_record, video.capture_time_us)
                            .map_err(CallError::Media)?;
                    }
                    let now = unix_micros(SystemTime::now());
                    // On one clock: the peer's may be off (call/clock.rs).
                    let captured = shared
                        .counters
                        .peer_time_on_our_clock(video.capture_time_us);
                    let latency = Duration::from_micros(now.saturating_sub(captured));
                    shared.counters.record_latency(latency);
                    shared.counters.record_decoded(captured, now);
                    Counters::add(&shared.counters.frames_shown, 1);
                    if ui.has_window() {
                        let picture =
                            std::mem::replace(&mut shown, Picture::empty(PictureFormat::Rgb24));
                        let (width, height) = (picture.width(), picture.height());
                        let pixels = picture.into_shared();
                        let previous = on_screen.replace(pixels.clone());
                        let image = Arc::new(RgbImage {
                            width,
                            height,
                            pixels,
                        });
                        ui.update(|s| s.peer_picture = Some(image));
                        if let Some(buffer) = previous.and_then(reclaim) {
                            shown = Picture::empty_reusing(PictureFormat::Rgb24, buffer);
                        }
                    }
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

/// The memory behind `bytes` as an empty vector, if nothing else holds it
/// (the window let go of it and it is not a slice of a receive buffer).
fn reclaim(bytes: Bytes) -> Option<Vec<u8>> {
    let mut unique = bytes.try_into_mut().ok()?;
    // Emptied first, so turning it into a vector copies nothing.
    unique.clear();
    Some(Vec::from(unique))
}
