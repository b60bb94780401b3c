//! Media send: the thread that captures and encodes our video.
//!
//! Why a thread, not a task: a camera's `next_frame` blocks (nokhwa has no
//! timeout) and encoding is CPU work. The source paces the thread; each
//! encoded frame goes into the outgoing [`Latest`] slot, where a frame the
//! link has not taken yet is replaced by the next one, so a slow link costs
//! frames, never delay. An inter-coded frame (H.264) is never replaced, since
//! the frames after it refer to it: while the link still holds the previous
//! one, the next picture is skipped before it is encoded. The thread checks the call's cancellation token
//! between frames; a source that never returns is left behind (see
//! `pipeline::MEDIA_STOP_GRACE`) rather than holding up the hang-up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::handshake::SendPlan;
use super::pipeline::{PipelineConfig, Shared};
use super::rate::SizeLadder;
use super::stats::{unix_micros, Counters};
use super::CallError;
use crate::media::{
    CapturedFrame, Encoder, FrameContent, FrameSource, H264Frame, PictureFormat, Quality,
};
use crate::protocol::limits::KEYFRAME_REQUEST_INTERVAL;
use crate::protocol::{PixelFormat, Video};
use crate::ui::{RgbImage, UiHandle};

/// Capture and encode on one thread: the source paces it, and a frame that
/// waits in the outgoing slot is replaced by the next one.
///
/// `stopped` is sent when the thread has let go of the source (a camera is
/// released then); it never is while the source blocks.
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn_media_thread(
    mut source: Box<dyn FrameSource>,
    shared: Arc<Shared>,
    config: &PipelineConfig,
    send: SendPlan,
    ui: UiHandle,
    failures: UnboundedSender<CallError>,
    stopped: oneshot::Sender<()>,
) -> Result<(), CallError> {
    let quality = config.quality;
    let fps = config.fps.get();
    let max_bitrate = config.max_bitrate;
    std::thread::Builder::new()
        .name("vchat-media".into())
        .spawn(move || {
            let mut encoder = Encoder::new();
            encoder.set_max_size(send.max_width, send.max_height);
            encoder.h264().set_frame_rate(fps);
            if let Some(max) = max_bitrate {
                let start = encoder.h264().bitrate().min(max);
                encoder.h264().set_bitrate(start);
            }
            // Keyframes asked for are made at most this often.
            let mut last_asked_keyframe: Option<Instant> = None;
            // The picture's size, the rate control's last lever.
            let mut sizes = SizeLadder::default();
            let mut load = EncodeLoad::new(Instant::now());
            let mut self_view = Encoder::new();
            let mut last_source_seq: Option<u64> = None;
            let mut seq = 0u64;
            let result = (|| {
                while !shared.token.is_cancelled() {
                    let mut frame = source.next_frame().map_err(CallError::Media)?;
                    if let Some(last) = last_source_seq {
                        let skipped = frame.sequence.saturating_sub(last + 1);
                        Counters::add(&shared.counters.dropped_at_capture, skipped);
                    }
                    last_source_seq = Some(frame.sequence);
                    if !shared.camera_on.load(Ordering::Acquire) {
                        continue;
                    }
                    // A source that hands out an old frame (a driver's
                    // queue, a stalled file) must not make the call late.
                    if frame.captured_at.elapsed() > shared.max_latency {
                        Counters::add(&shared.counters.too_late, 1);
                        continue;
                    }
                    if ui.has_window() {
                        show_self(&mut self_view, &mut frame, quality, &ui);
                    }
                    // The peer takes none of our formats: we only show ourselves.
                    let Some(format) = send.format else {
                        continue;
                    };
                    if format.is_inter_coded() {
                        // Skipped before encoding, never after: the link
                        // still holds the frame before.
                        if !shared.outgoing.is_empty() {
                            Counters::add(&shared.counters.link_busy, 1);
                            continue;
                        }
                        let now = Instant::now();
                        let spaced = last_asked_keyframe
                            .is_none_or(|last| now >= last + KEYFRAME_REQUEST_INTERVAL);
                        if spaced && shared.keyframe_wanted.swap(false, Ordering::AcqRel) {
                            encoder.h264().request_keyframe();
                            last_asked_keyframe = Some(now);
                        }
                        // The rate control's target and the picture's size,
                        // once it has measured the link.
                        let target = shared.rate_target.load(Ordering::Relaxed);
                        if let Ok(target @ 1..) = u32::try_from(target) {
                            encoder.h264().set_bitrate(target);
                            let overloaded = sizes.overloaded();
                            let before = encoder.h264_scale();
                            let (numerator, denominator) = sizes.scale(
                                now,
                                target,
                                (frame.width(), frame.height()),
                                fps,
                                shared.content_limited.load(Ordering::Relaxed),
                                shared.rate_starting.load(Ordering::Relaxed),
                            );
                            if overloaded && before != (numerator, denominator) {
                                tracing::info!(
                                    "this machine cannot encode the picture as fast as it \
                                     comes: sending it at {numerator}/{denominator} size"
                                );
                            }
                            encoder.set_h264_scale(numerator, denominator);
                        }
                        let applied = u64::from(encoder.h264().bitrate());
                        shared
                            .counters
                            .target_bitrate
                            .store(applied, Ordering::Relaxed);
                    }
                    let capture_time_us = capture_unix_micros(&frame);
                    // A raw frame's pixels move into the message, uncopied.
                    let encoding_from = Instant::now();
                    let encoded = encoder
                        .encode_to_bytes(frame, format, quality)
                        .map_err(CallError::Media)?;
                    if let Some(share) = load.add(encoding_from, Instant::now()) {
                        sizes.encode_load(share);
                        shared
                            .counters
                            .encode_load_percent
                            .store((share * 100.0).round() as u64, Ordering::Relaxed);
                    }
                    if format == PixelFormat::H264
                        && encoder.last_h264_frame() == Some(H264Frame::Keyframe)
                    {
                        Counters::add(&shared.counters.keyframes_sent, 1);
                    }
                    // The encoder's own rate control made nothing of it.
                    let Some(encoded) = encoded else {
                        Counters::add(&shared.counters.rate_skipped, 1);
                        continue;
                    };
                    let video = Video {
                        seq,
                        capture_time_us,
                        width: encoded.width,
                        height: encoded.height,
                        format: encoded.format,
                        payload: encoded.payload,
                        total_len: None,
                    };
                    seq += 1;
                    if !shared.outgoing.put(video) {
                        break;
                    }
                }
                Ok(())
            })();
            // The source (and a camera behind it) is released here, on hang-up.
            drop(source);
            if let Err(e) = result {
                let _ = failures.send(e);
            }
            let _ = stopped.send(());
        })
        // Not joined: the call waits for `stopped` for a while, then leaves a
        // thread stuck in its source behind (the process exit ends it).
        .map(drop)
        .map_err(|e| CallError::Internal(format!("cannot start the media thread: {e}")))
}

/// The share of the media thread's time spent encoding, over windows of
/// about a second: the time between pictures includes waiting for the
/// source, so a share near 1 means pictures come faster than this machine
/// encodes them (the source then skips them before the link sees them).
struct EncodeLoad {
    window_from: Instant,
    encoding: Duration,
}

impl EncodeLoad {
    const WINDOW: Duration = Duration::from_secs(1);

    fn new(now: Instant) -> Self {
        EncodeLoad {
            window_from: now,
            encoding: Duration::ZERO,
        }
    }

    /// Adds one encoding from `from` to `to`; at the end of a window,
    /// returns the window's share and starts the next.
    fn add(&mut self, from: Instant, to: Instant) -> Option<f64> {
        self.encoding += to.saturating_duration_since(from);
        let window = to.saturating_duration_since(self.window_from);
        if window < Self::WINDOW {
            return None;
        }
        let share = self.encoding.as_secs_f64() / window.as_secs_f64();
        *self = EncodeLoad::new(to);
        Some(share.min(1.0))
    }
}

/// The frame's capture instant on the shared wall clock.
fn capture_unix_micros(frame: &CapturedFrame) -> u64 {
    let age = frame.captured_at.elapsed();
    unix_micros(SystemTime::now() - age)
}

fn show_self(encoder: &mut Encoder, frame: &mut CapturedFrame, quality: Quality, ui: &UiHandle) {
    let image = match &mut frame.content {
        // An RGB24 picture is lent to the window: its bytes become shared
        // (no copy), and the message takes the same bytes.
        FrameContent::Picture(picture) if picture.format() == PictureFormat::Rgb24 => {
            picture.make_shared();
            RgbImage {
                width: picture.width(),
                height: picture.height(),
                pixels: picture.clone().into_shared(),
            }
        }
        // Converted or decoded pixels live in the encoder's scratch buffer,
        // which the window thread cannot borrow: one copy.
        _ => match encoder.encode(frame, PixelFormat::Rgb24, quality) {
            Ok(rgb) => RgbImage {
                width: rgb.width,
                height: rgb.height,
                pixels: Bytes::copy_from_slice(rgb.payload),
            },
            Err(_) => return,
        },
    };
    let image = Arc::new(image);
    ui.update(|s| s.self_picture = Some(image));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_load_is_the_share_of_each_second_spent_encoding() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut load = EncodeLoad::new(start);
        // 30 pictures a second, 20 ms each: 60 %.
        let shares: Vec<f64> = (0..31)
            .filter_map(|i| load.add(ms(i * 33), ms(i * 33 + 20)))
            .collect();
        assert_eq!(shares.len(), 1);
        assert!((shares[0] - 0.6).abs() < 0.02, "{shares:?}");
        // The next window starts afresh: one 900 ms encoding in 1 s.
        let share = load
            .add(ms(1020), ms(1920))
            .or(load.add(ms(1920), ms(2020)));
        assert!(share.is_some_and(|s| s > 0.9), "{share:?}");
    }
}
