//! The running call: video both ways at once, with bounded latency.
//!
//! ```text
//!  media thread                 writer task            reader task           decoder thread
//!  source.next_frame()          ┌ control (pong,       read_message() ──►    decode ─► window
//!  encoder.encode() ─► [out] ─► │  camera, bye) first  Video ─► [in] ─────►         └► recorder
//!                      slot     └ then newest video    Ping ─► pong                 (latency)
//! ```
//!
//! `[out]` and `[in]` are [`Latest`] slots: a stage that falls behind finds
//! only the newest frame waiting, never a queue, so a slow network or a slow
//! peer costs frames (counted as dropped), not delay. A supervisor waits for
//! the first reason to end (hang-up from the window, Ctrl-C, `--frames`,
//! `--duration`, the peer's bye, a silent or broken peer, a local failure),
//! sends bye when it can, and stops every thread and task before returning.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, Notify};
use tracing::{debug, info, warn};

use super::handshake::SendPlan;
use super::stats::{json_ms, text_ms, unix_micros, Counters, Snapshot, Totals};
use super::{CallError, EndReason, StatsFormat};
use crate::media::Fps;
use crate::media::Latest;
use crate::media::{
    CapturedFrame, Decoder, Encoder, FrameContent, FrameSource, Picture, PictureFormat, Quality,
    Y4mRecorder,
};
use crate::protocol::{
    Bye, ByeReason, Connection, Message, PingMeter, PixelFormat, ProtocolError, Video,
};
use crate::ui::{CallState, RgbImage, UiCommand, UiHandle};

pub use crate::protocol::limits::{PEER_TIMEOUT, PING_INTERVAL};

/// How long we wait for our bye to be written, and then for the peer to
/// close, before giving up on it (PROTOCOL.md's close timeout).
const BYE_TIMEOUT: Duration = crate::protocol::limits::CLOSE_TIMEOUT;

/// How many times per peer timeout the reader looks whether bytes arrived:
/// a peer is gone only after a whole timeout without a single byte.
const LIVENESS_CHECKS_PER_TIMEOUT: u32 = 5;

/// Threads wake at least this often to notice a stop request.
const THREAD_POLL: Duration = Duration::from_millis(100);

/// How the call runs, from the command line.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub quality: Quality,
    pub fps: Fps,
    pub record: Option<PathBuf>,
    pub max_frames: Option<u64>,
    pub duration: Option<Duration>,
    pub stats: Option<StatsFormat>,
    pub peer_timeout: Duration,
    pub peer_name: String,
}

/// How a call went.
#[derive(Debug, Clone)]
pub struct CallSummary {
    pub peer: String,
    pub end: EndReason,
    pub duration: Duration,
    pub totals: Totals,
    pub rtt: Option<Duration>,
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
    /// Frames in the latency figures.
    pub latency_samples: u64,
    /// See [`Counters::video_span`]: `vchat bench` times throughput by it.
    pub video_span: Option<Duration>,
    pub recorded: Option<(PathBuf, u64)>,
}

impl CallSummary {
    /// The one line printed when the call ends.
    pub fn line(&self) -> String {
        let secs = self.duration.as_secs_f64().max(1e-3);
        let ms = text_ms;
        let mut line = format!(
            "call with {} ended ({}) after {:.1} s: sent {} frames ({:.1} fps), received {} ({:.1} fps), dropped {} out / {} in, rtt {}, latency p50 {} p99 {}",
            self.peer,
            self.end,
            secs,
            self.totals.frames_sent,
            self.totals.frames_sent as f64 / secs,
            self.totals.frames_received,
            self.totals.frames_received as f64 / secs,
            self.totals.dropped_out,
            self.totals.dropped_in,
            ms(self.rtt),
            ms(self.latency_p50),
            ms(self.latency_p99),
        );
        if let Some((path, frames)) = &self.recorded {
            line.push_str(&format!(", recorded {frames} frames to {}", path.display()));
        }
        line
    }

    /// The summary as one JSON object, for `--stats json`.
    pub fn to_json(&self) -> String {
        let ms = json_ms;
        serde_json::json!({
            "event": "summary",
            "peer": self.peer,
            "end": self.end.to_string(),
            "duration_s": (self.duration.as_secs_f64() * 100.0).round() / 100.0,
            "frames_out": self.totals.frames_sent,
            "frames_in": self.totals.frames_received,
            "frames_shown": self.totals.frames_shown,
            "dropped_out": self.totals.dropped_out,
            "dropped_in": self.totals.dropped_in,
            "rtt_ms": ms(self.rtt),
            "latency_p50_ms": ms(self.latency_p50),
            "latency_p99_ms": ms(self.latency_p99),
            "recorded_frames": self.recorded.as_ref().map(|(_, n)| *n),
        })
        .to_string()
    }
}

/// Why the supervisor stopped, before it is turned into a summary or error.
enum Stop {
    Local(EndReason),
    PeerBye(Bye),
    Failed(CallError),
}

/// State shared by the stages.
struct Shared {
    counters: Counters,
    outgoing: Latest<Video>,
    /// The nonce of the newest ping not answered yet. One slot, not a queue:
    /// a peer that pings faster than it reads gets fewer pongs, and cannot
    /// make us hold more than one.
    pong: Latest<u64>,
    /// Set when standard output is gone, so the call hangs up.
    output_closed: Notify,
    /// Set when the peer said bye: the writer sends nothing more, only our
    /// close_notify (PROTOCOL.md 6.2: a bye is not answered with a bye).
    close_quietly: Notify,
    incoming: Latest<(Video, Instant)>,
    camera_on: AtomicBool,
    stop: AtomicBool,
    frames_reached: Notify,
    started: Instant,
}

/// What the media thread does with a new frame while the writer has not
/// taken the previous one yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outgoing {
    /// Replace it: a call's latency stays bounded, a slow link costs frames.
    #[default]
    Newest,
    /// Wait for the writer: every encoded frame is sent and none is encoded
    /// in vain. For `vchat bench` throughput runs, whose source is unpaced.
    EveryFrame,
}

/// Runs a connected call until it ends. `connection` has completed the
/// hello/accept handshake, which settled `send`; `source` is already open
/// (so a missing camera was reported before connecting). `outgoing` says
/// what happens to frames the writer has not taken.
pub async fn run<S>(
    connection: Connection<S>,
    source: Box<dyn FrameSource>,
    config: PipelineConfig,
    send: SendPlan,
    ui: UiHandle,
    mut commands: UnboundedReceiver<UiCommand>,
    outgoing: Outgoing,
) -> Result<CallSummary, CallError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        counters: Counters::default(),
        outgoing: Latest::new(),
        pong: Latest::new(),
        output_closed: Notify::new(),
        close_quietly: Notify::new(),
        incoming: Latest::new(),
        camera_on: AtomicBool::new(true),
        stop: AtomicBool::new(false),
        frames_reached: Notify::new(),
        started: Instant::now(),
    });
    ui.update(|s| s.state = CallState::Connected);
    match send.format {
        Some(format) => info!(peer = %config.peer_name, %format, "connected"),
        None => info!(peer = %config.peer_name, "connected, sending no video"),
    }

    let recorder = match &config.record {
        Some(path) => Some(Y4mRecorder::create(path, config.fps).map_err(CallError::Media)?),
        None => None,
    };

    let (reader, writer) = connection.into_split();
    let (control_tx, control_rx) = mpsc::unbounded_channel::<Message>();
    let (failure_tx, mut failure_rx) = mpsc::unbounded_channel::<CallError>();

    let media = spawn_media_thread(
        source,
        shared.clone(),
        &config,
        send,
        outgoing,
        ui.clone(),
        failure_tx.clone(),
    )?;
    let decoder = spawn_decoder_thread(shared.clone(), recorder, ui.clone(), failure_tx.clone())?;
    let (writer_done_tx, writer_done) = oneshot::channel();
    let writer_task = tokio::spawn(write_loop(
        writer,
        control_rx,
        shared.clone(),
        config.max_frames,
        config.peer_timeout,
        writer_done_tx,
    ));
    let (reader_tx, mut reader_outcome) = oneshot::channel();
    let reader_task = tokio::spawn({
        let shared = shared.clone();
        let ui = ui.clone();
        let timeout = config.peer_timeout;
        async move {
            let mut reader = reader;
            let outcome = read_loop(&mut reader, shared, ui, timeout).await;
            // After the peer's bye or its protocol error, read on to its
            // close, discarding: closing with its bytes unread would reset
            // the connection, which can destroy our bye before it is read.
            let discard = match &outcome {
                Ok(_) => true,
                Err(CallError::Protocol(e)) => !e.is_connection_lost(),
                Err(_) => false,
            };
            let _ = reader_tx.send(outcome);
            if discard {
                let _ = tokio::time::timeout(BYE_TIMEOUT, reader.discard_until_closed()).await;
            }
        }
    });
    let pinger = tokio::spawn(ping_loop(control_tx.clone(), shared.clone()));
    let reporter = tokio::spawn(report_loop(
        shared.clone(),
        ui.clone(),
        config.stats,
        config.peer_name.clone(),
    ));

    let duration_limit = async {
        match config.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut writer_done = writer_done;
    // A oneshot must not be polled again once it has answered.
    let mut writer_finished = false;
    let stop = tokio::select! {
        outcome = &mut reader_outcome => match outcome {
            Ok(Ok(bye)) => Stop::PeerBye(bye),
            Ok(Err(e)) => Stop::Failed(e),
            Err(_) => Stop::Failed(CallError::Internal("reader task ended without an outcome".into())),
        },
        result = &mut writer_done => {
            writer_finished = true;
            match result {
                Ok(Err(e)) => Stop::Failed(e),
                _ => Stop::Failed(CallError::Internal("writer task ended early".into())),
            }
        }
        Some(e) = failure_rx.recv() => Stop::Failed(e),
        () = shared.frames_reached.notified() => Stop::Local(EndReason::FramesReached),
        () = duration_limit => Stop::Local(EndReason::DurationReached),
        () = shared.output_closed.notified() => Stop::Local(EndReason::OutputClosed),
        _ = tokio::signal::ctrl_c() => Stop::Local(EndReason::Interrupted),
        reason = hang_up_requested(&mut commands, &shared, &control_tx) => Stop::Local(reason),
    };

    // Say goodbye when the connection can still carry it. A writer that
    // ended has already said its bye if it could (see `write_loop`).
    let bye = match &stop {
        _ if writer_finished => None,
        Stop::Local(reason) => Some(Bye::new(ByeReason::Hangup, reason.to_string())),
        Stop::Failed(e) => e.bye(),
        Stop::PeerBye(_) => None,
    };
    if let Some(bye) = bye {
        let _ = control_tx.send(Message::Bye(bye));
        match tokio::time::timeout(BYE_TIMEOUT, &mut writer_done).await {
            Err(_) => warn!("the peer did not take our bye within {BYE_TIMEOUT:?}"),
            // Read on until the peer closes (it does on our bye): closing with
            // its last messages unread would reset the connection, and a
            // reset can destroy our bye and last frames before the peer reads
            // them. Only for local stops: then the reader is still running.
            Ok(Ok(Ok(()))) if matches!(stop, Stop::Local(_)) => {
                let _ = tokio::time::timeout(BYE_TIMEOUT, &mut reader_outcome).await;
            }
            Ok(_) => {}
        }
    } else if matches!(stop, Stop::PeerBye(_)) && !writer_finished {
        shared.close_quietly.notify_one();
        let _ = tokio::time::timeout(BYE_TIMEOUT, &mut writer_done).await;
    }
    // The reader ends by itself at the peer's close (see above); bounded.
    let mut reader_task = reader_task;
    if tokio::time::timeout(BYE_TIMEOUT, &mut reader_task)
        .await
        .is_err()
    {
        reader_task.abort();
    }

    // Stop everything and wait for it, so the camera is released and the
    // recording finished before we report.
    shared.stop.store(true, Ordering::Release);
    shared.outgoing.close();
    shared.pong.close();
    shared.incoming.close();
    writer_task.abort();
    pinger.abort();
    reporter.abort();
    join_thread(media).await;
    let recorded = join_thread(decoder).await.flatten();
    // A failure the threads reported while stopping (e.g. the recording
    // could not be finished) still fails the call.
    if let (Ok(e), Stop::Local(_) | Stop::PeerBye(_)) = (failure_rx.try_recv(), &stop) {
        return Err(e);
    }
    let elapsed = shared.started.elapsed();

    let end = match stop {
        Stop::Local(reason) => reason,
        Stop::PeerBye(bye) if bye.reason == ByeReason::Hangup => EndReason::PeerHungUp(bye.text),
        Stop::PeerBye(bye) => return Err(CallError::PeerEnded(bye)),
        Stop::Failed(e) => {
            ui.update(|s| s.state = CallState::Ended(e.to_string()));
            return Err(e);
        }
    };
    let latency = shared.counters.latency_total();
    let summary = CallSummary {
        peer: config.peer_name.clone(),
        end,
        duration: elapsed,
        totals: totals(&shared),
        rtt: shared.counters.rtt(),
        latency_p50: latency.percentile(0.5),
        latency_p99: latency.percentile(0.99),
        latency_samples: latency.count(),
        video_span: shared.counters.video_span(),
        recorded,
    };
    ui.update(|s| s.state = CallState::Ended(summary.end.to_string()));
    Ok(summary)
}

/// Waits for the window's hang-up and forwards camera toggles to the peer.
async fn hang_up_requested(
    commands: &mut UnboundedReceiver<UiCommand>,
    shared: &Shared,
    control: &UnboundedSender<Message>,
) -> EndReason {
    loop {
        match commands.recv().await {
            Some(UiCommand::HangUp) => return EndReason::HungUp,
            Some(UiCommand::SetCamera(on)) => {
                shared.camera_on.store(on, Ordering::Release);
                let _ = control.send(Message::Camera { on });
                info!("camera {}", if on { "on" } else { "off" });
            }
            // No window (headless) or the window is gone: nothing to wait for.
            None => std::future::pending::<()>().await,
        }
    }
}

fn totals(shared: &Shared) -> Totals {
    let c = &shared.counters;
    Totals {
        frames_sent: Counters::get(&c.frames_sent),
        bytes_sent: Counters::get(&c.bytes_sent),
        frames_received: Counters::get(&c.frames_received),
        bytes_received: Counters::get(&c.bytes_received),
        frames_shown: Counters::get(&c.frames_shown),
        dropped_out: Counters::get(&c.dropped_at_capture) + shared.outgoing.dropped(),
        dropped_in: shared.incoming.dropped(),
    }
}

/// Joins a thread without blocking the runtime.
async fn join_thread<T: Send + 'static>(handle: JoinHandle<T>) -> Option<T> {
    tokio::task::spawn_blocking(move || handle.join().ok())
        .await
        .ok()
        .flatten()
}

/// Capture and encode on one thread: the source paces it, and a frame that
/// waits in the outgoing slot is replaced by the next one.
fn spawn_media_thread(
    mut source: Box<dyn FrameSource>,
    shared: Arc<Shared>,
    config: &PipelineConfig,
    send: SendPlan,
    outgoing: Outgoing,
    ui: UiHandle,
    failures: UnboundedSender<CallError>,
) -> Result<JoinHandle<()>, CallError> {
    let quality = config.quality;
    std::thread::Builder::new()
        .name("vchat-media".into())
        .spawn(move || {
            let mut encoder = Encoder::new();
            encoder.set_max_size(send.max_width, send.max_height);
            let mut self_view = Encoder::new();
            let mut last_source_seq: Option<u64> = None;
            let mut seq = 0u64;
            let result = (|| {
                while !shared.stop.load(Ordering::Acquire) {
                    let mut frame = source.next_frame().map_err(CallError::Media)?;
                    if let Some(last) = last_source_seq {
                        let skipped = frame.sequence.saturating_sub(last + 1);
                        Counters::add(&shared.counters.dropped_at_capture, skipped);
                    }
                    last_source_seq = Some(frame.sequence);
                    if !shared.camera_on.load(Ordering::Acquire) {
                        continue;
                    }
                    if ui.has_window() {
                        show_self(&mut self_view, &mut frame, quality, &ui);
                    }
                    // The peer takes none of our formats: we only show ourselves.
                    let Some(format) = send.format else {
                        continue;
                    };
                    let capture_time_us = capture_unix_micros(&frame);
                    // A raw frame's pixels move into the message, uncopied.
                    let encoded = encoder
                        .encode_to_bytes(frame, format, quality)
                        .map_err(CallError::Media)?;
                    let video = Video {
                        seq,
                        capture_time_us,
                        width: encoded.width,
                        height: encoded.height,
                        format: encoded.format,
                        payload: encoded.payload,
                    };
                    seq += 1;
                    if outgoing == Outgoing::EveryFrame {
                        while !shared.outgoing.wait_taken(THREAD_POLL) {
                            if shared.stop.load(Ordering::Acquire) {
                                return Ok(());
                            }
                        }
                    }
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
        })
        .map_err(|e| CallError::Internal(format!("cannot start the media thread: {e}")))
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

/// Decodes the newest received frame for the window and the recorder.
fn spawn_decoder_thread(
    shared: Arc<Shared>,
    mut recorder: Option<Y4mRecorder>,
    ui: UiHandle,
    failures: UnboundedSender<CallError>,
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
            let result = (|| {
                while let Some(next) = shared.incoming.take_blocking(THREAD_POLL) {
                    let Some((video, _received)) = next else {
                        if shared.stop.load(Ordering::Acquire) {
                            break;
                        }
                        continue;
                    };
                    // Raw RGB24 is shown from the received bytes, uncopied.
                    decoder
                        .decode_bytes_into(
                            video.format,
                            video.width,
                            video.height,
                            &video.payload,
                            PictureFormat::Rgb24,
                            &mut shown,
                        )
                        .map_err(CallError::PeerSentBadVideo)?;
                    if let Some(recorder) = recorder.as_mut() {
                        decoder
                            .decode_into(
                                video.format,
                                video.width,
                                video.height,
                                &video.payload,
                                PictureFormat::I420,
                                &mut for_record,
                            )
                            .map_err(CallError::PeerSentBadVideo)?;
                        recorder
                            .write_at(&for_record, video.capture_time_us)
                            .map_err(CallError::Media)?;
                    }
                    let now = unix_micros(SystemTime::now());
                    let latency = Duration::from_micros(now.saturating_sub(video.capture_time_us));
                    shared.counters.record_latency(latency);
                    shared.counters.record_decoded(video.capture_time_us, now);
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

/// Writes control messages first, then the newest pong, then the newest
/// video frame. A write that fails for a reason the peer should hear about
/// (not a lost connection) is followed by our bye, sent from here because
/// this task owns the writing half.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: crate::protocol::MessageWriter<W>,
    mut control: UnboundedReceiver<Message>,
    shared: Arc<Shared>,
    max_frames: Option<u64>,
    peer_timeout: Duration,
    done: oneshot::Sender<Result<(), CallError>>,
) {
    let result = async {
        loop {
            let message = tokio::select! {
                biased;
                () = shared.close_quietly.notified() => {
                    return timed(peer_timeout.min(BYE_TIMEOUT), writer.shutdown()).await;
                }
                Some(message) = control.recv() => message,
                nonce = shared.pong.take() => match nonce {
                    Some(nonce) => Message::Pong { nonce },
                    None => return Ok(()),
                },
                video = shared.outgoing.take() => match video {
                    Some(v) => Message::Video(v),
                    None => return Ok(()),
                },
            };
            if let Message::Bye(bye) = message {
                debug!("sending bye: {}", bye.text);
                return timed(peer_timeout, writer.close(bye)).await;
            }
            let video_len = match &message {
                Message::Video(v) => Some(v.payload.len() as u64),
                _ => None,
            };
            if let Err(e) = timed(peer_timeout, writer.write_message(&message)).await {
                // Only a message refused before any byte of it was written
                // leaves the stream fit to carry a bye; a timed-out write
                // stopped mid-frame.
                if let (CallError::Protocol(_), Some(bye)) = (&e, e.bye()) {
                    let _ = timed(peer_timeout.min(BYE_TIMEOUT), writer.close(bye)).await;
                }
                return Err(e);
            }
            if let Some(len) = video_len {
                Counters::add(&shared.counters.bytes_sent, len);
                let sent = shared.counters.frames_sent.fetch_add(1, Ordering::Relaxed) + 1;
                if max_frames.is_some_and(|max| sent == max) {
                    shared.frames_reached.notify_one();
                }
            }
        }
    }
    .await;
    let _ = done.send(result);
}

/// A write that the peer does not take within `limit` means the peer stopped
/// reading: treat it like a vanished peer rather than hang.
async fn timed(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), ProtocolError>>,
) -> Result<(), CallError> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_connection_lost() => Err(CallError::ConnectionLost(e.to_string())),
        Ok(Err(e)) => Err(CallError::Protocol(e)),
        Err(_) => Err(CallError::PeerVanished(limit)),
    }
}

/// Reads until the peer says bye (Ok) or the call fails (Err).
async fn read_loop<R: AsyncRead + Unpin>(
    reader: &mut crate::protocol::MessageReader<R>,
    shared: Arc<Shared>,
    ui: UiHandle,
    peer_timeout: Duration,
) -> Result<Bye, CallError> {
    let mut pings = PingMeter::new();
    let check_every = peer_timeout / LIVENESS_CHECKS_PER_TIMEOUT;
    let (mut heard, mut last_heard) = (reader.bytes_received(), Instant::now());
    loop {
        // Liveness counts bytes, not whole messages: a large frame on a slow
        // link may take longer than the timeout to arrive in full.
        let message = match tokio::time::timeout(check_every, reader.read_message()).await {
            Err(_) => {
                if reader.bytes_received() != heard {
                    (heard, last_heard) = (reader.bytes_received(), Instant::now());
                } else if last_heard.elapsed() >= peer_timeout {
                    return Err(CallError::PeerVanished(peer_timeout));
                }
                continue;
            }
            Ok(Ok(Some(message))) => {
                (heard, last_heard) = (reader.bytes_received(), Instant::now());
                message
            }
            Ok(Ok(None)) => {
                return Err(CallError::ConnectionLost(
                    "the peer closed the connection without saying bye".into(),
                ))
            }
            Ok(Err(e)) if e.is_connection_lost() => {
                return Err(CallError::ConnectionLost(e.to_string()))
            }
            Ok(Err(e)) => return Err(CallError::Protocol(e)),
        };
        match message {
            Message::Video(video) => {
                Counters::add(&shared.counters.frames_received, 1);
                Counters::add(&shared.counters.bytes_received, video.payload.len() as u64);
                shared.incoming.put((video, Instant::now()));
            }
            Message::Ping { nonce } => {
                pings.on_ping(Instant::now())?;
                shared.pong.put(nonce);
            }
            Message::Pong { nonce } => {
                let now = shared.started.elapsed().as_micros() as u64;
                let rtt = now.saturating_sub(nonce).max(1);
                shared.counters.rtt_us.store(rtt, Ordering::Relaxed);
            }
            Message::Camera { on } => {
                info!("peer turned the camera {}", if on { "on" } else { "off" });
                ui.update(|s| {
                    s.peer_camera_on = on;
                    if !on {
                        s.peer_picture = None;
                    }
                });
            }
            Message::Bye(bye) => return Ok(bye),
            // The session already refuses hellos and accepts after the handshake.
            Message::Hello(_) | Message::Accept(_) => {}
        }
    }
}

/// Pings the peer every second; the nonce is our clock, so the pong gives the RTT.
async fn ping_loop(control: UnboundedSender<Message>, shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(PING_INTERVAL);
    loop {
        ticks.tick().await;
        let nonce = shared.started.elapsed().as_micros() as u64;
        if control.send(Message::Ping { nonce }).is_err() {
            return;
        }
    }
}

/// Once a second: overlay stats, and a stats line if asked.
async fn report_loop(shared: Arc<Shared>, ui: UiHandle, format: Option<StatsFormat>, peer: String) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut before = totals(&shared);
    let mut last = Instant::now();
    loop {
        ticks.tick().await;
        let now = totals(&shared);
        let snapshot = Snapshot::between(
            before,
            now,
            last.elapsed(),
            shared.started.elapsed(),
            &shared.counters,
        );
        before = now;
        last = Instant::now();
        let lines = snapshot.overlay_lines();
        let printed = match format {
            Some(StatsFormat::Json) => print_line(&mut std::io::stdout(), &snapshot.to_json(&peer)),
            Some(StatsFormat::Text) => print_line(&mut std::io::stderr(), &lines.join("   ")),
            None => Ok(()),
        };
        if let Err(e) = printed {
            // `println!` would panic here; whoever read us is gone, so hang up.
            warn!("cannot write statistics ({e}); hanging up");
            shared.output_closed.notify_one();
            return;
        }
        ui.update(|s| s.stats = lines);
    }
}

/// Writes one line and flushes it, so a reader sees each second's line as
/// it happens; an error (a closed pipe) is returned, never a panic.
pub fn print_line(out: &mut impl std::io::Write, line: &str) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}
