//! The running call: video both ways at once, with bounded latency, and
//! one way to stop it.
//!
//! ```text
//!  send.rs: media thread        link.rs: writer task   link.rs: reader task   receive.rs: decoder thread
//!  source.next_frame()          ┌ control (bye,        read_message() ──►     decode ─► window
//!  encoder.encode() ─► [out] ─► │  camera, ping) first Video ─► [in] ──────►         └► recorder
//!                      slot     └ pong, newest video   other ─► Core (state machine)
//! ```
//!
//! `[out]` and `[in]` are [`Latest`] slots: a stage that falls behind finds
//! only the newest frame waiting, never a queue, so a slow network or a slow
//! peer costs frames (counted as dropped), not delay.
//!
//! [`Core`] holds the call's state machine (`state.rs`) and carries out what
//! it says: messages to the writer, the peer's camera and the round trip to
//! the window and the stats, and the end. The supervisor in [`run`] turns
//! everything else that can end a call (hang-up from the window, Ctrl-C,
//! `--frames`, `--duration`, a closed stdout, a local failure, a writer that
//! failed) into events for it, waits for its end, says goodbye as it says,
//! and then cancels the call's one `CancellationToken`: every task (in the
//! call's `TaskTracker`) and thread observes it. A source thread stuck in its
//! camera is not waited for beyond [`MEDIA_STOP_GRACE`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::clock::{ClockOffset, Estimate};
use super::handshake::{now, PeerIntro, SendPlan};
use super::link::VideoTakenHook;
use super::rate::{RateController, DEFAULT_MAX_BITRATE};
use super::state::{Action, CallMachine, Event, Outcome};
use super::stats::{
    json_ms, latency_clock, text_ms, unix_micros, Counters, LatencySummary, Snapshot, Totals,
};
use super::voice::{self, AudioConfig, Voice, VoiceSnapshot};
use super::voice_path::{self, VoiceDatagrams};
use super::{link, receive, send};
use super::{CallError, EndReason, StatsFormat};
use crate::media::{Fps, FrameSource, Latest, Quality, Y4mRecorder, START_BITRATE_BPS};
use crate::protocol::{Bye, Connection, Message, PixelFormat, Video};
use crate::ui::{CallState, UiCommand, UiHandle};

pub use crate::protocol::limits::{PEER_TIMEOUT, PING_INTERVAL};

/// How long we wait for our bye to be written, and then for the peer to
/// close, before giving up on it (PROTOCOL.md's close timeout).
pub(super) const BYE_TIMEOUT: Duration = crate::protocol::limits::CLOSE_TIMEOUT;

/// Threads wake at least this often to notice a stop request.
pub(super) const THREAD_POLL: Duration = Duration::from_millis(100);

/// How long a hang-up waits for the media thread to let go of its source.
/// A camera delivers a frame every 1/fps (33 ms at 30 fps); one that
/// delivers none for this long may be stalled, and the call ends without
/// waiting for it (the thread still stops after its next frame, or with the
/// process), so hang-up stays within issue 12's 200 ms.
pub const MEDIA_STOP_GRACE: Duration = Duration::from_millis(100);

/// How long the end waits for the call's tasks once they are cancelled:
/// they stop at their next await, so this only bounds a bug.
const TASKS_STOP_LIMIT: Duration = Duration::from_secs(1);

/// How a dropped call gets a new connection to the same peer, already past
/// the hello/accept handshake: the caller waits `after` and redials, the
/// listener waits for the peer to call again. Called with the attempt
/// number (from 1) and the backoff the state machine chose.
pub type Relink<S> = Box<
    dyn FnMut(
            u32,
            Duration,
        )
            -> Pin<Box<dyn Future<Output = Result<(Connection<S>, PeerIntro), CallError>> + Send>>
        + Send,
>;

/// The default `--max-latency`: ITU-T G.114's limit for one-way delay in
/// conversation. A frame of ours that has not left within it is dropped.
pub const DEFAULT_MAX_LATENCY: Duration = Duration::from_millis(400);

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
    /// `--max-latency`: a frame of ours older than this is dropped, not sent.
    pub max_latency: Duration,
    /// `--max-bitrate`: the most our video may use, in bits per second.
    pub max_bitrate: Option<u32>,
    /// Voice: where ours comes from, whether we take the peer's, where it plays.
    pub audio: AudioConfig,
    /// Whether voice may go by UDP datagram beside the stream.
    pub voice_datagrams: VoiceDatagrams,
}

impl PipelineConfig {
    /// A call with `peer_name` as `vchat` runs one without options: JPEG
    /// quality 80 at 30 fps, no recording, no limits, no stats, the
    /// protocol's peer timeout and the default latency budget. Tests and the
    /// bench change what they need with struct update syntax.
    pub fn for_peer(peer_name: &str) -> Self {
        PipelineConfig {
            quality: Quality::default(),
            fps: Fps::default(),
            record: None,
            max_frames: None,
            duration: None,
            stats: None,
            peer_timeout: PEER_TIMEOUT,
            peer_name: peer_name.to_owned(),
            max_latency: DEFAULT_MAX_LATENCY,
            max_bitrate: None,
            audio: AudioConfig::off(),
            voice_datagrams: VoiceDatagrams::Off,
        }
    }
}

/// How a call went.
#[derive(Debug, Clone)]
pub struct CallSummary {
    pub peer: String,
    pub end: EndReason,
    pub duration: Duration,
    pub totals: Totals,
    pub rtt: Option<Duration>,
    pub latency: LatencySummary,
    /// The peer's clock against ours at the end (call/clock.rs).
    pub clock: Option<Estimate>,
    /// See [`Counters::video_span`]: `vchat bench` times throughput by it.
    pub video_span: Option<Duration>,
    pub recorded: Option<(PathBuf, u64)>,
    /// The voice's figures (none when no audio flowed either way).
    pub voice: Option<VoiceSnapshot>,
    /// `--record-audio`: the file and its length in samples.
    pub recorded_audio: Option<(PathBuf, u64)>,
}

impl CallSummary {
    /// A summary with nothing counted: a call that never carried media.
    pub fn empty(peer: String, end: EndReason, duration: Duration) -> Self {
        CallSummary {
            peer,
            end,
            duration,
            totals: Totals::default(),
            rtt: None,
            latency: LatencySummary::default(),
            clock: None,
            video_span: None,
            recorded: None,
            voice: None,
            recorded_audio: None,
        }
    }

    /// How the call ended, in words for the window's end screen, naming
    /// the peer: "bob hung up: see you", "call with bob ended: duration
    /// reached".
    pub fn end_in_words(&self) -> String {
        match &self.end {
            EndReason::PeerHungUp(why) if why.is_empty() => format!("{} hung up", self.peer),
            EndReason::PeerHungUp(why) => format!("{} hung up: {why}", self.peer),
            EndReason::HungUp => format!("you hung up on {}", self.peer),
            other => format!("call with {} ended: {other}", self.peer),
        }
    }

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
            ms(self.latency.p50),
            ms(self.latency.p99),
        );
        if self.totals.too_late > 0 {
            line.push_str(&format!(", {} too late to send", self.totals.too_late));
        }
        if let Some((path, frames)) = &self.recorded {
            line.push_str(&format!(", recorded {frames} frames to {}", path.display()));
        }
        if let Some(v) = &self.voice {
            line.push_str(&format!(
                "; voice: sent {} packets, received {}, latency p50 {}, concealed {}",
                v.packets_out,
                v.packets_in,
                ms(v.latency_p50),
                v.playout.concealed
            ));
        }
        if let Some((path, samples)) = &self.recorded_audio {
            line.push_str(&format!(
                ", recorded {:.1} s of audio to {}",
                *samples as f64 / 48_000.0,
                path.display()
            ));
        }
        line
    }

    /// The summary as one JSON object, for `--stats json`.
    pub fn to_json(&self) -> String {
        let ms = json_ms;
        let mut line = serde_json::json!({
            "event": "summary",
            "ok": true,
            "peer": self.peer,
            "end": self.end.to_string(),
            "duration_s": (self.duration.as_secs_f64() * 100.0).round() / 100.0,
            "rtt_ms": ms(self.rtt),
            "latency_p50_ms": ms(self.latency.p50),
            "latency_p99_ms": ms(self.latency.p99),
            "latency_clock": latency_clock(self.clock),
            "clock_offset_ms": self.clock.map(|c| c.offset_us as f64 / 1e3),
            "clock_error_ms": self.clock.map(|c| c.error_us as f64 / 1e3),
            "recorded_frames": self.recorded.as_ref().map(|(_, n)| *n),
            "recorded_audio_samples": self.recorded_audio.as_ref().map(|(_, n)| *n),
        });
        if let Some(v) = &self.voice {
            v.add_counts_to_json(&mut line);
            if let Some(map) = line.as_object_mut() {
                for (key, value) in [
                    ("audio_latency_p50_ms", ms(v.latency_p50).into()),
                    ("audio_latency_p99_ms", ms(v.latency_max).into()),
                    ("av_offset_min_ms", v.av_offset_min_ms.into()),
                    ("av_offset_max_ms", v.av_offset_max_ms.into()),
                ] {
                    map.insert(key.to_owned(), value);
                }
            }
        }
        self.totals.add_to_json(&mut line);
        line.to_string()
    }
}

/// State shared by the stages.
pub(super) struct Shared {
    pub(super) counters: Counters,
    pub(super) outgoing: Latest<Video>,
    /// Told of each frame the writer takes from `outgoing`.
    pub(super) on_video_taken: Option<VideoTakenHook>,
    /// Frames older than this since capture are dropped before encoding
    /// or sending (`--max-latency`).
    pub(super) max_latency: Duration,
    /// The nonce of the newest ping not answered yet. One slot, not a queue:
    /// a peer that pings faster than it reads gets fewer pongs, and cannot
    /// make us hold more than one.
    pub(super) pong: Latest<u64>,
    /// Set when standard output is gone, so the call hangs up.
    output_closed: Notify,
    /// Set when the peer said bye: the writer sends nothing more, only our
    /// close_notify (PROTOCOL.md 6.2: a bye is not answered with a bye).
    pub(super) close_quietly: Notify,
    pub(super) incoming: Latest<(Video, Instant)>,
    pub(super) camera_on: AtomicBool,
    /// The peer needs a keyframe (it asked, or a new link started): the
    /// media thread makes its next H.264 frame one.
    pub(super) keyframe_wanted: AtomicBool,
    /// The rate control, fed by the link's sampler.
    rate: Mutex<RateController>,
    /// The peer's clock against ours, from the times in its pongs.
    clock: Mutex<ClockOffset>,
    /// Its latest target, bits per second (0 before the first reading):
    /// the media thread gives it to the H.264 encoder.
    pub(super) rate_target: AtomicU64,
    /// The rate control's last word on whether the picture is cheap to
    /// code (then it is never made smaller).
    pub(super) content_limited: AtomicBool,
    /// The rate control is still in startup (its target a climbing guess):
    /// the picture is not made smaller yet.
    pub(super) rate_starting: AtomicBool,
    /// The call's one stop signal: cancelled when the call ends, observed
    /// by every task (awaiting it) and thread (polling it).
    pub(super) token: CancellationToken,
    pub(super) frames_reached: Notify,
    pub(super) started: Instant,
    /// Voice both ways (call/voice.rs).
    pub(super) voice: Arc<Voice>,
    /// Our video follows the rate control's target (H.264), so the link's
    /// socket is paced by it (link.rs, [`link::sample_loop`]).
    pub(super) pace_video: bool,
}

impl Shared {
    /// The rate control (never poisoned for good: a panic elsewhere leaves
    /// its numbers usable).
    pub(super) fn rate(&self) -> std::sync::MutexGuard<'_, RateController> {
        self.rate.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The call's state machine and the means to carry out its actions; shared
/// by the tasks that feed it events.
pub(super) struct Core {
    machine: Mutex<CallMachine>,
    pub(super) shared: Arc<Shared>,
    /// The current link's control queue (replaced with each new link).
    control: Mutex<UnboundedSender<Message>>,
    /// The current link's token: cancelled when the link is dropped.
    link_token: Mutex<CancellationToken>,
    /// The current link's number; 0 while there is none (reconnecting).
    link: AtomicU64,
    /// The current link's reader, awaited at the end for the peer's close.
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where the machine's requests to reconnect go (to `relink_loop`).
    relinks: UnboundedSender<(u32, Duration)>,
    ui: UiHandle,
    /// What the machine said at the end, for the supervisor.
    end: Mutex<Option<(Option<Bye>, Outcome)>>,
    ended: Notify,
}

impl Core {
    /// Feeds one event, now, and carries out what follows. Never blocks:
    /// every action is a hand-off to a queue, a slot or the window state.
    pub(super) fn handle(&self, event: Event) {
        let mut machine = self.machine.lock().unwrap_or_else(PoisonError::into_inner);
        machine.handle(now(), event);
        while let Some(action) = machine.poll_action() {
            self.carry_out(action);
        }
    }

    /// Feeds an event from link number `link`, unless that link has been
    /// dropped meanwhile (its end is old news then). Checked under the
    /// machine's lock, where a reconnect drops the link.
    pub(super) fn handle_link(&self, link: u64, event: Event) {
        let mut machine = self.machine.lock().unwrap_or_else(PoisonError::into_inner);
        if self.link.load(Ordering::Acquire) != link {
            return;
        }
        machine.handle(now(), event);
        while let Some(action) = machine.poll_action() {
            self.carry_out(action);
        }
    }

    fn send(&self, message: Message) {
        let _ = self
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(message);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_deadline()
    }

    fn carry_out(&self, action: Action) {
        match action {
            Action::Send(Message::Pong { nonce, .. }) => {
                self.shared.pong.put(nonce);
            }
            Action::Send(message) => self.send(message),
            Action::PeerCamera(on) => {
                info!("peer turned the camera {}", if on { "on" } else { "off" });
                self.ui.update(|s| {
                    s.peer_camera_on = on;
                    if !on {
                        s.peer_picture = None;
                    }
                });
            }
            Action::PeerMicrophone(on) => {
                info!(
                    "peer {} the microphone",
                    if on { "unmuted" } else { "muted" }
                );
                self.shared.voice.peer_mic_on.store(on, Ordering::Relaxed);
                self.ui.update(|s| s.peer_muted = !on);
            }
            Action::RoundTrip { rtt, peer_time_us } => {
                let counters = &self.shared.counters;
                let micros = rtt.as_micros().try_into().unwrap_or(u64::MAX);
                counters.rtt_us.store(micros, Ordering::Relaxed);
                if let Some(peer_time_us) = peer_time_us {
                    let mut clock = self
                        .shared
                        .clock
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    clock.add(now(), unix_micros(SystemTime::now()), rtt, peer_time_us);
                    if let Some(estimate) = clock.estimate() {
                        counters.set_clock(estimate);
                    }
                }
            }
            // The first connection was made before the pipeline started;
            // a resumed one by `relink_loop`, which saw to the window.
            Action::Connected { .. } => {
                info!("the call is back");
                // The peer's decoder may have lost frames with the old link.
                self.shared.keyframe_wanted.store(true, Ordering::Release);
                self.ui.update(|s| s.state = CallState::Connected);
            }
            Action::MakeKeyframe => {
                self.shared.keyframe_wanted.store(true, Ordering::Release);
            }
            Action::Reconnect { attempt, after } => {
                // The media threads and counters carry on; only the link
                // goes (its tasks stop at their next await).
                self.link.store(0, Ordering::Release);
                self.link_token
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .cancel();
                if attempt == 1 {
                    warn!("the link dropped; reconnecting");
                }
                self.ui.update(|s| s.state = CallState::Reconnecting);
                let _ = self.relinks.send((attempt, after));
            }
            Action::End { bye, outcome } => {
                *self.end.lock().unwrap_or_else(PoisonError::into_inner) = Some((bye, outcome));
                self.ended.notify_one();
            }
        }
    }

    async fn wait_for_end(&self) -> (Option<Bye>, Outcome) {
        loop {
            if let Some(end) = self
                .end
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                return end;
            }
            self.ended.notified().await;
        }
    }
}

/// Runs a connected call until it ends. `connection` has completed the
/// hello/accept handshake driven by `machine` (now live), which settled
/// `send`; `source` is already open (so a missing camera was reported before
/// connecting). `on_video_taken` hears of each of our frames the link takes
/// (see [`VideoTakenHook`]).
#[allow(clippy::too_many_arguments)]
pub async fn run<S>(
    connection: Connection<S>,
    machine: CallMachine,
    source: Box<dyn FrameSource>,
    config: PipelineConfig,
    send: SendPlan,
    ui: UiHandle,
    commands: UnboundedReceiver<UiCommand>,
    on_video_taken: Option<VideoTakenHook>,
    relink: Option<Relink<S>>,
) -> Result<CallSummary, CallError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        counters: Counters::default(),
        outgoing: Latest::new(),
        on_video_taken,
        max_latency: config.max_latency,
        pong: Latest::new(),
        output_closed: Notify::new(),
        close_quietly: Notify::new(),
        incoming: Latest::new(),
        camera_on: AtomicBool::new(true),
        keyframe_wanted: AtomicBool::new(false),
        rate_target: AtomicU64::new(0),
        content_limited: AtomicBool::new(false),
        rate_starting: AtomicBool::new(true),
        clock: Mutex::new(ClockOffset::default()),
        rate: Mutex::new(RateController::new(
            START_BITRATE_BPS,
            config.max_bitrate.unwrap_or(DEFAULT_MAX_BITRATE),
        )),
        token: CancellationToken::new(),
        frames_reached: Notify::new(),
        started: Instant::now(),
        pace_video: send.format == Some(PixelFormat::H264),
        voice: Arc::new(
            Voice::new(
                &config.audio,
                send.audio.filter(|_| config.audio.source.is_some()),
            )
            .map_err(CallError::Media)?,
        ),
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

    let (failure_tx, failure_rx) = mpsc::unbounded_channel::<CallError>();
    let (relinks_tx, relinks_rx) = mpsc::unbounded_channel();
    let core = Arc::new(Core {
        machine: Mutex::new(machine),
        shared: shared.clone(),
        control: Mutex::new(mpsc::unbounded_channel().0),
        link_token: Mutex::new(shared.token.child_token()),
        link: AtomicU64::new(0),
        reader: Mutex::new(None),
        relinks: relinks_tx,
        ui: ui.clone(),
        end: Mutex::new(None),
        ended: Notify::new(),
    });
    let (media_stopped_tx, media_stopped) = oneshot::channel();
    send::spawn_media_thread(
        source,
        shared.clone(),
        &config,
        send,
        ui.clone(),
        failure_tx.clone(),
        media_stopped_tx,
    )?;
    let audio_thread = match &config.audio.source {
        Some(spec) if shared.voice.send_format.is_some() => Some(
            voice::spawn_audio_thread(
                spec.clone(),
                shared.voice.clone(),
                shared.token.clone(),
                config.max_latency,
                ui.clone(),
            )
            .map_err(CallError::Media)?,
        ),
        _ => None,
    };
    let playback = {
        let counters = shared.clone();
        voice::Playback::start(
            shared.voice.clone(),
            &config.audio,
            move |peer_us| counters.counters.peer_time_on_our_clock(peer_us),
            &ui,
        )
        .map_err(CallError::Media)?
    };
    let want_keyframe = {
        let core = core.clone();
        move || core.handle(Event::WantKeyframe)
    };
    let decoder = receive::spawn_decoder_thread(
        shared.clone(),
        recorder,
        ui.clone(),
        failure_tx.clone(),
        want_keyframe,
    )?;

    let tasks = TaskTracker::new();
    let (writer_done_tx, writer_done) = mpsc::unbounded_channel();
    let mut links = Links {
        core: core.clone(),
        tasks: tasks.clone(),
        max_frames: config.max_frames,
        peer_timeout: config.peer_timeout,
        writer_done: writer_done_tx,
        next: 1,
        voice_datagrams: config.voice_datagrams.clone(),
    };
    links.start(connection);
    if let Some(relink) = relink {
        tasks.spawn(relink_loop(links, relinks_rx, relink));
    }
    tasks.spawn(tick_loop(core.clone()));
    tasks.spawn(report_loop(
        shared.clone(),
        ui.clone(),
        config.stats,
        config.peer_name.clone(),
    ));
    // Pings go out from the first tick; the handshake left the rest queued.
    core.handle(Event::Tick);
    if config.audio.muted {
        info!("microphone muted (--muted)");
        ui.update(|s| s.self_muted = true);
        core.handle(Event::SetMicrophone(false));
    }

    let ending = supervise(&core, &config, commands, failure_rx, writer_done).await;

    // Stop everything. Tasks stop at their next await; the decoder thread
    // within a poll, after finishing the recording; the media thread within
    // a frame, unless its source is stalled: then it is left behind.
    shared.token.cancel();
    shared.outgoing.close();
    shared.pong.close();
    shared.incoming.close();
    shared.voice.queue.close();
    shared.voice.stream_copies.close();
    tasks.close();
    if tokio::time::timeout(TASKS_STOP_LIMIT, tasks.wait())
        .await
        .is_err()
    {
        warn!("the call's tasks did not stop within {TASKS_STOP_LIMIT:?}");
    }
    // The media thread and the decoder stop side by side.
    let media_stop = async {
        if tokio::time::timeout(MEDIA_STOP_GRACE, media_stopped)
            .await
            .is_err()
        {
            warn!("the video source did not stop within {MEDIA_STOP_GRACE:?}; not waiting for it");
        }
    };
    let ((), recorded) = tokio::join!(media_stop, join_thread(decoder));
    let recorded = recorded.flatten();
    // The audio thread wakes within a poll; its source is never stuck long.
    if let Some(thread) = audio_thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    let recorded_audio = match playback {
        Some(playback) => tokio::task::spawn_blocking(move || playback.finish())
            .await
            .map_err(|e| CallError::Internal(format!("the audio recording thread failed: {e}")))?
            .map_err(CallError::Media)?,
        None => None,
    };
    let Ending {
        outcome,
        mut failures,
    } = ending;
    // A failure the threads reported while stopping (e.g. the recording
    // could not be finished) still fails the call.
    if let (Ok(e), Outcome::Ended(_)) = (failures.try_recv(), &outcome) {
        return Err(e);
    }
    let end = match outcome {
        Outcome::Ended(reason) => reason,
        Outcome::Failed(e) => {
            ui.update(|s| s.state = CallState::Ended(e.to_string()));
            return Err(e);
        }
    };
    let latency = shared.counters.latency_total();
    let summary = CallSummary {
        peer: config.peer_name.clone(),
        end,
        duration: shared.started.elapsed(),
        totals: totals(&shared),
        rtt: shared.counters.rtt(),
        latency: LatencySummary {
            p50: latency.percentile(0.5),
            p99: latency.percentile(0.99),
            samples: latency.count(),
        },
        clock: shared.counters.clock(),
        video_span: shared.counters.video_span(),
        recorded,
        voice: {
            let v = shared.voice.summary();
            (v.packets_in > 0 || v.packets_out > 0).then_some(v)
        },
        recorded_audio,
    };
    ui.update(|s| s.state = CallState::Ended(summary.end.to_string()));
    Ok(summary)
}

/// Starts links: a writer and a reader task on a connection, numbered.
struct Links {
    core: Arc<Core>,
    tasks: TaskTracker,
    max_frames: Option<u64>,
    peer_timeout: Duration,
    /// How each writer ended, with its link's number, for the supervisor.
    writer_done: UnboundedSender<(u64, Result<(), CallError>)>,
    next: u64,
    /// Whether each link may carry voice by datagram (call/voice_path.rs).
    voice_datagrams: VoiceDatagrams,
}

impl Links {
    /// Makes `connection` the call's link. The machine's messages go to it
    /// from now on; the previous link, if any, was dropped by the reconnect.
    fn start<S>(&mut self, connection: Connection<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let core = &self.core;
        let id = self.next;
        self.next += 1;
        let token = core.shared.token.child_token();
        // Read before the stream is split; the probe goes with this link.
        if let Some(probe) = link::kernel_probe(&connection) {
            self.tasks
                .spawn(link::sample_loop(probe, core.shared.clone(), token.clone()));
        }
        if let Some(path) = voice_path::task_for(
            &connection,
            &self.voice_datagrams,
            &core.shared,
            token.clone(),
        ) {
            self.tasks.spawn(path);
        }
        let (reader, writer) = connection.into_split();
        let (control_tx, control_rx) = mpsc::unbounded_channel::<Message>();
        *core.control.lock().unwrap_or_else(PoisonError::into_inner) = control_tx;
        *core
            .link_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = token.clone();
        core.link.store(id, Ordering::Release);
        let done = self.writer_done.clone();
        self.tasks.spawn(link::write_loop(
            writer,
            control_rx,
            core.shared.clone(),
            self.max_frames,
            self.peer_timeout,
            token.clone(),
            move |result| {
                let _ = done.send((id, result));
            },
        ));
        let reader = self.tasks.spawn(link::read_loop(
            reader,
            core.clone(),
            self.peer_timeout,
            token,
            id,
        ));
        *core.reader.lock().unwrap_or_else(PoisonError::into_inner) = Some(reader);
    }
}

/// Carries out the machine's requests to reconnect: gets a new connection
/// through `relink` and makes it the link, or tells the machine the attempt
/// failed (it asks again after a longer wait, until its window closes).
async fn relink_loop<S>(
    mut links: Links,
    mut requests: UnboundedReceiver<(u32, Duration)>,
    mut relink: Relink<S>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let core = links.core.clone();
    let token = core.shared.token.clone();
    loop {
        let (attempt, after) = tokio::select! {
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
            () = token.cancelled() => return,
        };
        let result = tokio::select! {
            result = relink(attempt, after) => result,
            () = token.cancelled() => return,
        };
        match result {
            Ok((connection, intro)) => {
                info!("reconnected (attempt {attempt})");
                links.start(connection);
                core.ui.update(|s| s.peer_camera_on = intro.camera_on);
                core.handle(Event::Resumed(intro));
            }
            Err(e) => {
                info!("reconnect attempt {attempt} failed: {e}");
                core.handle(Event::LinkLost(e.to_string()));
            }
        }
    }
}

/// How the supervisor left the call.
struct Ending {
    outcome: Outcome,
    /// Failures threads may still report while stopping.
    failures: UnboundedReceiver<CallError>,
}

/// Feeds the state machine everything that can end the call besides the
/// link, until it says the call is over; then says goodbye its way.
async fn supervise(
    core: &Core,
    config: &PipelineConfig,
    mut commands: UnboundedReceiver<UiCommand>,
    mut failures: UnboundedReceiver<CallError>,
    mut writer_done: UnboundedReceiver<(u64, Result<(), CallError>)>,
) -> Ending {
    let shared = &core.shared;
    let duration_limit = async {
        match config.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(duration_limit);
    // The link whose writer has ended, if any: only the current link's
    // writer counts, one dropped for a new link ends as it was told to.
    let mut finished_link = None;
    let mut duration_reached = false;
    let mut window_open = true;
    let (bye, outcome) = loop {
        tokio::select! {
            end = core.wait_for_end() => break end,
            Some((link, result)) = writer_done.recv() => {
                finished_link = Some(link);
                core.handle_link(link, match result {
                    Err(CallError::ConnectionLost(why)) => Event::LinkLost(why),
                    Err(e) => Event::Failed(e),
                    Ok(()) => Event::Failed(CallError::Internal("the writer task ended early".into())),
                });
            }
            Some(e) = failures.recv() => core.handle(Event::Failed(e)),
            () = shared.frames_reached.notified() => core.handle(Event::Stop(EndReason::FramesReached)),
            () = &mut duration_limit, if !duration_reached => {
                duration_reached = true;
                core.handle(Event::Stop(EndReason::DurationReached));
            }
            () = shared.output_closed.notified() => core.handle(Event::Stop(EndReason::OutputClosed)),
            command = commands.recv(), if window_open => match command {
                Some(UiCommand::HangUp) => core.handle(Event::Stop(EndReason::HungUp)),
                Some(UiCommand::Interrupt) => core.handle(Event::Stop(EndReason::Interrupted)),
                Some(UiCommand::SetCamera(on)) => {
                    shared.camera_on.store(on, std::sync::atomic::Ordering::Release);
                    info!("camera {}", if on { "on" } else { "off" });
                    core.handle(Event::SetCamera(on));
                }
                Some(UiCommand::SetMicrophone(on)) => {
                    shared.voice.mic_on.store(on, std::sync::atomic::Ordering::Release);
                    info!("microphone {}", if on { "on" } else { "muted" });
                    core.ui.update(|s| s.self_muted = !on);
                    core.handle(Event::SetMicrophone(on));
                }
                // No window (headless) or the window is gone: nothing to wait for.
                None => window_open = false,
            },
        }
    };

    let peer_said_bye = matches!(
        outcome,
        Outcome::Ended(EndReason::PeerHungUp(_)) | Outcome::Failed(CallError::PeerEnded(_))
    );
    let current = core.link.load(Ordering::Acquire);
    let writer_finished = current == 0 || finished_link == Some(current);
    // The current writer's end (earlier links' are skipped).
    let current_writer_done = async {
        while let Some((link, _)) = writer_done.recv().await {
            if link == current {
                return;
            }
        }
    };
    // A writer that ended has already said its bye if it could.
    match bye.filter(|_| !writer_finished) {
        Some(bye) => {
            core.send(Message::Bye(bye));
            if tokio::time::timeout(BYE_TIMEOUT, current_writer_done)
                .await
                .is_err()
            {
                warn!("the peer did not take our bye within {BYE_TIMEOUT:?}");
            }
        }
        None if peer_said_bye && !writer_finished => {
            shared.close_quietly.notify_one();
            let _ = tokio::time::timeout(BYE_TIMEOUT, current_writer_done).await;
        }
        None => {}
    }
    let reader_task = core
        .reader
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    // Read on until the peer closes (it does on our bye, and after its own),
    // so our last words are not destroyed by a reset; not for a link that
    // is already gone.
    let link_gone = matches!(
        outcome,
        Outcome::Failed(CallError::ConnectionLost(_) | CallError::PeerVanished(_))
    );
    if let (false, Some(reader_task)) = (link_gone || current == 0, reader_task) {
        if tokio::time::timeout(BYE_TIMEOUT, reader_task)
            .await
            .is_err()
        {
            debug!("the peer did not close within {BYE_TIMEOUT:?} after the end");
        }
    }
    Ending { outcome, failures }
}

/// Wakes the state machine at its deadlines (pings, liveness, timeouts).
async fn tick_loop(core: Arc<Core>) {
    let token = core.shared.token.clone();
    while let Some(deadline) = core.next_deadline() {
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => core.handle(Event::Tick),
            () = token.cancelled() => return,
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
        too_late: Counters::get(&c.too_late),
        link_busy: Counters::get(&c.link_busy),
        late_out: Counters::get(&c.late_for_link),
        keyframes_sent: Counters::get(&c.keyframes_sent),
        rate_skipped: Counters::get(&c.rate_skipped),
        awaiting_keyframe: Counters::get(&c.awaiting_keyframe),
    }
}

/// Joins a thread without blocking the runtime.
async fn join_thread<T: Send + 'static>(handle: std::thread::JoinHandle<T>) -> Option<T> {
    tokio::task::spawn_blocking(move || handle.join().ok())
        .await
        .ok()
        .flatten()
}

/// Once a second: overlay stats, and a stats line if asked.
async fn report_loop(shared: Arc<Shared>, ui: UiHandle, format: Option<StatsFormat>, peer: String) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let token = shared.token.clone();
    let mut before = totals(&shared);
    let mut voice_before = shared.voice.counts();
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = token.cancelled() => return,
        }
        let now = totals(&shared);
        let mut snapshot = Snapshot::between(
            before,
            now,
            last.elapsed(),
            shared.started.elapsed(),
            &shared.counters,
        );
        let voice = shared
            .voice
            .take_second(voice_before, last.elapsed().as_secs_f64());
        voice_before = shared.voice.counts();
        if shared.voice.send_format.is_some() || shared.voice.playout.is_some() {
            snapshot.voice = Some(voice);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(end: EndReason) -> CallSummary {
        CallSummary::empty("bob".into(), end, Duration::from_secs(3))
    }

    #[test]
    fn the_end_screen_names_the_peer() {
        let said = |end| ended(end).end_in_words();
        assert_eq!(
            said(EndReason::PeerHungUp("see you".into())),
            "bob hung up: see you"
        );
        assert_eq!(said(EndReason::PeerHungUp(String::new())), "bob hung up");
        assert_eq!(said(EndReason::HungUp), "you hung up on bob");
        assert_eq!(
            said(EndReason::DurationReached),
            "call with bob ended: duration reached"
        );
    }
}
