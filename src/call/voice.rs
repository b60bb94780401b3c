//! Voice in a call: the thread that captures and encodes ours, the queue
//! that puts it ahead of video on the wire, and the playout of the peer's.
//!
//! ```text
//!  audio thread                      link.rs writer            link.rs reader
//!  AudioSource ─► (EchoCanceller) ─► VoiceEncoder ─► [AudioQueue] ─► before video
//!                                                    link.rs reader: Audio ─► Playout::push
//!                                     AudioOutput (speaker or clock)
//!                                     └ Playout::pull ─► ear, WAV, audio clock, EchoCanceller
//! ```
//!
//! **Echo.** With a microphone and a speaker, the speaker's sound reaches
//! the microphone; the echo canceller (media/audio/echo.rs) hears what the
//! speaker plays and takes it out of our voice before it is encoded.
//!
//! Why a queue for audio and a newest-only slot for video: every 20 ms of
//! voice matters (a missing packet is a click or a gap), and packets are
//! tiny; the queue is still bounded, and packets older than
//! `--max-latency` are dropped unsent. Why the writer takes audio before
//! video: late voice breaks a conversation, a late picture only freezes.
//!
//! **Lip sync.** The playout publishes the audio clock: the peer's capture
//! time of the sample reaching our ear now. The decoder thread compares each
//! picture it shows with it (`av_offset`, positive when the picture is behind
//! the voice). Audio usually arrives first (it goes first and takes no
//! encoding time), so when the pictures lag the playout waits for them: once
//! a second the playout's extra delay moves halfway towards the lag minus
//! [`SYNC_AIM`], within [`MAX_SYNC_DELAY`] (ITU-R BT.1359's window is
//! audio at most 45 ms early, 125 ms late). Only a lag that lasts counts
//! (`next_sync_delay`): a stall of the video stream is not waited for.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tracing::{info, warn};

use super::pipeline::THREAD_POLL;
use super::stats::{unix_micros, Counters, Histogram};
use crate::media::audio::{
    level_dbfs, open_audio_source, AudioOutput, AudioSource, AudioSourceSpec, EchoCanceller,
    Playout, PlayoutStats, SpeakerChoice, VoiceEncoder, WavRecorder,
};
use crate::media::MediaError;
use crate::protocol::datagram::ReplayWindow;
use crate::protocol::{Audio, AudioFormat};
use crate::ui::UiHandle;

/// Packets of ours that may wait for the link (500 ms): beyond that the
/// oldest go, as they would be too late anyway.
const QUEUE_LIMIT: usize = 25;

/// Where lip sync aims: the voice this far ahead of the picture, inside
/// the 45 ms that viewers do not notice, with room for jitter.
pub const SYNC_AIM: Duration = Duration::from_millis(15);

/// The most the playout waits for lagging pictures.
pub const MAX_SYNC_DELAY: Duration = Duration::from_millis(200);

/// Pictures lag steadily when the middle half of a second's A/V offsets
/// lies within this; wider, the video stream stalled and caught up.
const STEADY_LAG_SPREAD: Duration = Duration::from_millis(60);

/// Seconds a lag must last before the voice waits for it.
const LAG_SECONDS: usize = 3;

/// The audio clock is stale (the peer muted, no audio flows) after this.
const CLOCK_STALE: Duration = Duration::from_millis(200);

/// The lip-sync delay (µs) after a second whose A/V offsets (µs, sorted;
/// positive: the picture behind the voice) were `offsets`, from `now`;
/// `None` without offsets. `recent_lags` keeps the last seconds' lags.
///
/// Only a lag that lasts holds the voice back: a second's lag counts if
/// the middle half of its offsets is within [`STEADY_LAG_SPREAD`], and the
/// voice waits for the smallest lag of the last [`LAG_SECONDS`]. A stall of
/// the video stream (a TCP retransmission timeout) freezes the picture for
/// a second or two and then catches up; waiting for it put the voice 100
/// ms later on the lab link, the jump itself was a gap, and the playout
/// takes 10 s to come back (it speeds up by 1 % at most), for pictures
/// that were on time again a second later. A delay no longer needed comes
/// down at once.
fn next_sync_delay(now: i64, offsets: &[i64], recent_lags: &mut VecDeque<i64>) -> Option<i64> {
    let lag = *offsets.get(offsets.len() / 4)?;
    let upper = *offsets.get(offsets.len() * 3 / 4)?;
    let steady = upper - lag <= STEADY_LAG_SPREAD.as_micros() as i64;
    if recent_lags.len() == LAG_SECONDS {
        recent_lags.pop_front();
    }
    recent_lags.push_back(if steady { lag } else { i64::MIN });
    let lasting = if recent_lags.len() == LAG_SECONDS {
        recent_lags.iter().copied().min().unwrap_or(i64::MIN)
    } else {
        i64::MIN
    };
    // Halfway towards the aim each second: quick, without hunting.
    let aim = SYNC_AIM.as_micros() as i64;
    let step = if lag < aim {
        (lag - aim) / 2
    } else if lasting > aim {
        (lasting - aim) / 2
    } else {
        0
    };
    Some((now + step).clamp(0, MAX_SYNC_DELAY.as_micros() as i64))
}

/// `--audio-source`, `--speaker`, `--record-audio`, `--no-audio`.
#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// Where our voice comes from; `None`: we send none.
    pub source: Option<AudioSourceSpec>,
    /// Whether we take the peer's voice at all (`--no-audio`: no).
    pub receive: bool,
    pub speaker: SpeakerChoice,
    pub record: Option<PathBuf>,
    /// `--muted`: the call starts with our microphone off.
    pub muted: bool,
    /// Take the speaker's sound out of the microphone's (on unless
    /// `--no-echo-cancel`); used only when both are devices.
    pub echo_cancel: bool,
}

impl AudioConfig {
    /// No audio either way (the bench, and tests about video alone).
    pub fn off() -> Self {
        AudioConfig {
            source: None,
            receive: false,
            speaker: SpeakerChoice::None,
            record: None,
            muted: false,
            echo_cancel: false,
        }
    }
}

/// Our packets waiting for the link, oldest first.
#[derive(Default)]
pub(super) struct AudioQueue {
    packets: Mutex<VecDeque<Audio>>,
    ready: Notify,
    closed: AtomicBool,
}

impl AudioQueue {
    pub(super) fn push(&self, audio: Audio) -> bool {
        let mut packets = self.packets.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = packets.len() >= QUEUE_LIMIT;
        if dropped {
            packets.pop_front();
        }
        packets.push_back(audio);
        drop(packets);
        self.ready.notify_one();
        dropped
    }

    /// The oldest packet, waiting for one; `None` once closed.
    pub(super) async fn take(&self) -> Option<Audio> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(audio) = self
                .packets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
            {
                return Some(audio);
            }
            self.ready.notified().await;
        }
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

/// The call's voice state, shared by its stages.
pub(super) struct Voice {
    pub(super) queue: AudioQueue,
    /// Copies of packets sent by datagram while the UDP path is in doubt,
    /// for the stream too (call/voice_path.rs); the writer skips any it
    /// has passed already.
    pub(super) stream_copies: AudioQueue,
    /// Our microphone: false while muted.
    pub(super) mic_on: AtomicBool,
    /// The peer's, as its `microphone` messages said.
    pub(super) peer_mic_on: AtomicBool,
    /// The format we send, if the peer takes one and we have a source.
    pub(super) send_format: Option<AudioFormat>,
    /// The peer's voice, if we take it.
    pub(super) playout: Option<Mutex<Playout>>,
    /// The audio clock: the peer's capture time of what our ear hears, and
    /// when that was so.
    clock: Mutex<Option<(u64, Instant)>>,
    pub(super) packets_sent: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) packets_received: AtomicU64,
    pub(super) bytes_received: AtomicU64,
    /// Our packets dropped unsent (too old, or the queue overflowed).
    pub(super) dropped_out: AtomicU64,
    /// Our packets sent by datagram (call/voice_path.rs).
    pub(super) udp_packets_out: AtomicU64,
    /// The peer's packets whose first copy came by datagram.
    pub(super) udp_packets_in: AtomicU64,
    /// Datagrams refused: not the call's key, replayed, malformed.
    pub(super) udp_refused: AtomicU64,
    /// Second copies of the peer's packets (repeats, or both paths), dropped.
    pub(super) duplicates: AtomicU64,
    /// Copies of our datagram packets also sent in the stream (path in doubt).
    pub(super) stream_copies_sent: AtomicU64,
    /// Whether our voice goes by datagram now; told to the writer, which
    /// takes voice only while it does not.
    path_up: AtomicBool,
    pub(super) path_changed: Notify,
    /// The peer's packet numbers seen lately, to drop second copies.
    seen: Mutex<ReplayWindow>,
    level_ours: AtomicU32,
    level_peer: AtomicU32,
    latency_second: Mutex<Histogram>,
    latency_total: Mutex<Histogram>,
    /// A/V offsets of shown pictures (µs, positive: the picture is late).
    av_second: Mutex<Vec<i64>>,
    /// The lag of each of the last [`LAG_SECONDS`] seconds, for lip sync.
    recent_lags: Mutex<VecDeque<i64>>,
    av_total: Mutex<(i64, i64, u64)>,
    /// The playout's extra delay for lip sync, µs.
    sync_delay_us: AtomicI64,
    /// With a microphone and a speaker: the echo canceller between them.
    pub(super) echo: Option<Arc<EchoCanceller>>,
    /// Samples the output has played (and `--record-audio` written) so
    /// far: where in the WAV each recorded picture went up.
    pub(super) samples_played: AtomicU64,
}

/// Voice figures for one interval or a whole call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VoiceSnapshot {
    pub packets_out: u64,
    pub packets_in: u64,
    pub kbit_out: f64,
    pub kbit_in: f64,
    pub latency_p50: Option<Duration>,
    pub latency_max: Option<Duration>,
    /// Median and extremes of the A/V offset, ms (positive: picture late).
    pub av_offset_p50_ms: Option<f64>,
    pub av_offset_min_ms: Option<f64>,
    pub av_offset_max_ms: Option<f64>,
    pub playout: PlayoutStats,
    pub level_ours_db: f32,
    pub level_peer_db: f32,
    pub muted: bool,
    pub peer_muted: bool,
    pub dropped_out: u64,
    /// Our packets sent by datagram, the peer's that came by datagram
    /// first, datagrams refused, second copies dropped.
    pub udp_out: u64,
    pub udp_in: u64,
    pub udp_refused: u64,
    pub duplicates: u64,
    /// Of `udp_out`, how many also went in the stream (the path in doubt).
    pub stream_copies: u64,
    /// Whether our voice goes by datagram at the end of the interval.
    pub by_udp: bool,
    /// The playout's extra delay for lip sync, µs.
    pub sync_delay_us: u64,
    /// How much echo the canceller removes now, dB (once it has learnt).
    pub echo_removed_db: Option<f64>,
}

impl VoiceSnapshot {
    /// Adds the voice's figures to a `--stats json` line.
    pub fn add_to_json(&self, object: &mut serde_json::Value) {
        self.add_counts_to_json(object);
        let ms = super::stats::json_ms;
        let round = |v: f64| (v * 10.0).round() / 10.0;
        if let Some(map) = object.as_object_mut() {
            for (key, value) in [
                ("audio_kbit_out", round(self.kbit_out).into()),
                ("audio_kbit_in", round(self.kbit_in).into()),
                ("audio_latency_p50_ms", ms(self.latency_p50).into()),
                ("audio_latency_max_ms", ms(self.latency_max).into()),
                (
                    "audio_jitter_target_ms",
                    (self.playout.target_us / 1000).into(),
                ),
                (
                    "audio_buffered_ms",
                    (self.playout.buffered_us / 1000).into(),
                ),
                ("av_offset_p50_ms", self.av_offset_p50_ms.map(round).into()),
                ("av_offset_min_ms", self.av_offset_min_ms.map(round).into()),
                ("av_offset_max_ms", self.av_offset_max_ms.map(round).into()),
                ("level_out_db", round(f64::from(self.level_ours_db)).into()),
                ("level_in_db", round(f64::from(self.level_peer_db)).into()),
                ("muted", self.muted.into()),
                ("peer_muted", self.peer_muted.into()),
                ("echo_removed_db", self.echo_removed_db.map(round).into()),
                (
                    "audio_path",
                    if self.by_udp { "udp" } else { "stream" }.into(),
                ),
            ] {
                map.insert(key.to_owned(), value);
            }
        }
    }

    /// Adds the counts every `--stats json` line with voice carries, per
    /// second and in the summary, under one set of names.
    pub fn add_counts_to_json(&self, object: &mut serde_json::Value) {
        if let Some(map) = object.as_object_mut() {
            for (key, value) in [
                ("audio_packets_out", self.packets_out),
                ("audio_packets_in", self.packets_in),
                ("audio_concealed", self.playout.concealed),
                ("audio_late", self.playout.late),
                ("audio_underruns", self.playout.underruns),
                ("audio_discarded", self.playout.discarded),
                ("audio_dropped_out", self.dropped_out),
                ("audio_udp_out", self.udp_out),
                ("audio_udp_in", self.udp_in),
                ("audio_udp_refused", self.udp_refused),
                ("audio_duplicates", self.duplicates),
                ("audio_stream_copies", self.stream_copies),
            ] {
                map.insert(key.to_owned(), value.into());
            }
        }
    }

    /// The overlay's words on voice, with a level meter for each side:
    /// "voice 48 ms |||||..... / |||.......". Short, as it joins a line.
    pub fn overlay_part(&self) -> String {
        let meter = |db: f32, muted: bool| {
            if muted {
                return "muted".to_owned();
            }
            // -60 dBFS (a quiet room) to 0: ten steps.
            let steps = (((db + 60.0) / 6.0).clamp(0.0, 10.0)) as usize;
            format!("{}{}", "|".repeat(steps), ".".repeat(10 - steps))
        };
        format!(
            "voice{} {} {} / {}",
            if self.by_udp { " udp" } else { "" },
            super::stats::text_ms(self.latency_p50),
            meter(self.level_ours_db, self.muted),
            meter(self.level_peer_db, self.peer_muted),
        )
    }
}

impl Voice {
    pub(super) fn new(
        config: &AudioConfig,
        send_format: Option<AudioFormat>,
    ) -> Result<Self, MediaError> {
        Ok(Voice {
            queue: AudioQueue::default(),
            stream_copies: AudioQueue::default(),
            mic_on: AtomicBool::new(!config.muted),
            peer_mic_on: AtomicBool::new(true),
            send_format,
            playout: if config.receive {
                Some(Mutex::new(Playout::new()?))
            } else {
                None
            },
            clock: Mutex::new(None),
            packets_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            dropped_out: AtomicU64::new(0),
            udp_packets_out: AtomicU64::new(0),
            udp_packets_in: AtomicU64::new(0),
            udp_refused: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            stream_copies_sent: AtomicU64::new(0),
            path_up: AtomicBool::new(false),
            path_changed: Notify::new(),
            seen: Mutex::new(ReplayWindow::default()),
            level_ours: AtomicU32::new((-100f32).to_bits()),
            level_peer: AtomicU32::new((-100f32).to_bits()),
            latency_second: Mutex::new(Histogram::default()),
            latency_total: Mutex::new(Histogram::default()),
            av_second: Mutex::new(Vec::new()),
            recent_lags: Mutex::new(VecDeque::with_capacity(LAG_SECONDS)),
            av_total: Mutex::new((i64::MAX, i64::MIN, 0)),
            sync_delay_us: AtomicI64::new(0),
            echo: uses_echo_canceller(config).then(|| Arc::new(EchoCanceller::new())),
            samples_played: AtomicU64::new(0),
        })
    }

    /// Takes a packet from the peer, by stream or datagram; false for a
    /// second copy (a repeat, or the same packet by the other path).
    pub(super) fn receive(&self, audio: Audio) -> bool {
        let first = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first_time(audio.seq);
        if !first {
            Counters::add(&self.duplicates, 1);
            return false;
        }
        Counters::add(&self.packets_received, 1);
        Counters::add(&self.bytes_received, audio.payload.len() as u64);
        if let Some(playout) = &self.playout {
            let now = unix_micros(SystemTime::now());
            playout.lock().unwrap_or_else(PoisonError::into_inner).push(
                audio.seq,
                audio.capture_time_us,
                audio.payload,
                now,
            );
        }
        true
    }

    /// Whether our voice goes by datagram now.
    pub(super) fn path_up(&self) -> bool {
        self.path_up.load(Ordering::Acquire)
    }

    /// Sets [`path_up`](Self::path_up); true if that changed it (the writer
    /// is told).
    pub(super) fn set_path_up(&self, up: bool) -> bool {
        let changed = self.path_up.swap(up, Ordering::AcqRel) != up;
        if changed {
            self.path_changed.notify_waiters();
        }
        changed
    }

    /// The peer's capture time of what our ear hears now, if voice is
    /// playing.
    pub(super) fn audio_clock(&self) -> Option<u64> {
        let (capture, at) = (*self.clock.lock().unwrap_or_else(PoisonError::into_inner))?;
        let since = at.elapsed();
        (since < CLOCK_STALE).then(|| capture + since.as_micros() as u64)
    }

    /// Records the A/V offset of a picture shown now.
    pub(super) fn picture_shown(&self, capture_us: u64) {
        let Some(heard) = self.audio_clock() else {
            return;
        };
        let offset = heard as i64 - capture_us as i64;
        self.av_second
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(offset);
        let mut total = self.av_total.lock().unwrap_or_else(PoisonError::into_inner);
        *total = (total.0.min(offset), total.1.max(offset), total.2 + 1);
    }

    /// Our voice's level and the peer's, dBFS.
    pub(super) fn levels(&self) -> (f32, f32) {
        (
            f32::from_bits(self.level_ours.load(Ordering::Relaxed)),
            f32::from_bits(self.level_peer.load(Ordering::Relaxed)),
        )
    }

    /// One interval's figures (clears the per-interval ones), and moves the
    /// lip-sync delay.
    pub(super) fn take_second(&self, before: (u64, u64, u64, u64), secs: f64) -> VoiceSnapshot {
        let latency = std::mem::take(
            &mut *self
                .latency_second
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut offsets = std::mem::take(
            &mut *self
                .av_second
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        offsets.sort_unstable();
        let p50 = offsets.get(offsets.len() / 2).copied();
        // The lag the voice waits for is the second's lower quartile, not
        // its median: pictures that lag steadily lag in every quartile,
        // while a stall of the video stream (a TCP retransmission) that
        // froze part of the second would otherwise hold back the voice,
        // and the conversation, for the seconds the delay takes to undo.
        let now = self.sync_delay_us.load(Ordering::Relaxed);
        let mut recent_lags = self
            .recent_lags
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(next) = next_sync_delay(now, &offsets, &mut recent_lags) {
            self.sync_delay_us.store(next, Ordering::Relaxed);
            if let Some(playout) = &self.playout {
                playout
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .set_extra_delay(Duration::from_micros(next as u64));
            }
        }
        let now = self.counts();
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 * 8.0 / 1e3 / secs.max(1e-6);
        let (ours, peer) = self.levels();
        VoiceSnapshot {
            packets_out: now.0,
            packets_in: now.2,
            kbit_out: rate(before.1, now.1),
            kbit_in: rate(before.3, now.3),
            latency_p50: latency.percentile(0.5),
            latency_max: latency.percentile(1.0),
            av_offset_p50_ms: p50.map(|o| o as f64 / 1e3),
            av_offset_min_ms: offsets.first().map(|&o| o as f64 / 1e3),
            av_offset_max_ms: offsets.last().map(|&o| o as f64 / 1e3),
            playout: self.playout_stats(),
            level_ours_db: ours,
            level_peer_db: peer,
            muted: !self.mic_on.load(Ordering::Relaxed),
            peer_muted: !self.peer_mic_on.load(Ordering::Relaxed),
            dropped_out: Counters::get(&self.dropped_out),
            udp_out: Counters::get(&self.udp_packets_out),
            udp_in: Counters::get(&self.udp_packets_in),
            udp_refused: Counters::get(&self.udp_refused),
            duplicates: Counters::get(&self.duplicates),
            stream_copies: Counters::get(&self.stream_copies_sent),
            by_udp: self.path_up(),
            sync_delay_us: self.sync_delay_us.load(Ordering::Relaxed).max(0) as u64,
            echo_removed_db: self.echo.as_ref().and_then(|e| e.echo_removed_db()),
        }
    }

    /// The whole call's figures.
    pub(super) fn summary(&self) -> VoiceSnapshot {
        let latency = self
            .latency_total
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (min, max, n) = *self.av_total.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = self.counts();
        VoiceSnapshot {
            packets_out: counts.0,
            packets_in: counts.2,
            latency_p50: latency.percentile(0.5),
            latency_max: latency.percentile(0.99),
            av_offset_min_ms: (n > 0).then(|| min as f64 / 1e3),
            av_offset_max_ms: (n > 0).then(|| max as f64 / 1e3),
            playout: self.playout_stats(),
            dropped_out: Counters::get(&self.dropped_out),
            udp_out: Counters::get(&self.udp_packets_out),
            udp_in: Counters::get(&self.udp_packets_in),
            udp_refused: Counters::get(&self.udp_refused),
            duplicates: Counters::get(&self.duplicates),
            stream_copies: Counters::get(&self.stream_copies_sent),
            ..VoiceSnapshot::default()
        }
    }

    /// Packets and bytes out, packets and bytes in.
    pub(super) fn counts(&self) -> (u64, u64, u64, u64) {
        (
            Counters::get(&self.packets_sent),
            Counters::get(&self.bytes_sent),
            Counters::get(&self.packets_received),
            Counters::get(&self.bytes_received),
        )
    }

    fn playout_stats(&self) -> PlayoutStats {
        self.playout
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(PoisonError::into_inner).stats())
            .unwrap_or_default()
    }
}

/// Whether a call with `config` needs an echo canceller: a microphone can
/// hear a speaker (a tone or a file cannot, and no speaker plays nothing).
fn uses_echo_canceller(config: &AudioConfig) -> bool {
    config.echo_cancel
        && config.receive
        && config.speaker != SpeakerChoice::None
        && matches!(config.source, Some(AudioSourceSpec::Mic { .. }))
}

/// Captures and encodes our voice until the call's token is cancelled.
/// A microphone that fails ends our voice, not the call: the peer still
/// sees us, and the window says what happened.
pub(super) fn spawn_audio_thread(
    spec: AudioSourceSpec,
    voice: Arc<Voice>,
    token: tokio_util::sync::CancellationToken,
    max_latency: Duration,
    ui: UiHandle,
) -> Result<std::thread::JoinHandle<()>, MediaError> {
    std::thread::Builder::new()
        .name("vchat-audio".into())
        .spawn(move || {
            let Some(format) = voice.send_format else {
                return;
            };
            let result = (|| -> Result<(), MediaError> {
                let mut source: Box<dyn AudioSource> = open_audio_source(&spec)?;
                info!("sending voice from {}", source.describe());
                let mut encoder = VoiceEncoder::new()?;
                let mut seq = 0u64;
                while !token.is_cancelled() {
                    let Some(mut frame) = source.next_frame(THREAD_POLL)? else {
                        continue;
                    };
                    if let Some(echo) = &voice.echo {
                        echo.clean(&mut frame.samples)?;
                    }
                    let level = if voice.mic_on.load(Ordering::Acquire) {
                        level_dbfs(&frame.samples)
                    } else {
                        -100.0
                    };
                    voice.level_ours.store(level.to_bits(), Ordering::Relaxed);
                    if !voice.mic_on.load(Ordering::Acquire) {
                        continue;
                    }
                    let age = unix_micros(SystemTime::now()).saturating_sub(frame.capture_time_us);
                    if Duration::from_micros(age) > max_latency {
                        Counters::add(&voice.dropped_out, 1);
                        continue;
                    }
                    let payload = encoder.encode(&frame.samples)?;
                    seq += 1;
                    if voice.queue.push(Audio {
                        seq,
                        capture_time_us: frame.capture_time_us,
                        format,
                        payload: payload.into(),
                    }) {
                        Counters::add(&voice.dropped_out, 1);
                    }
                }
                Ok(())
            })();
            if let Err(e) = result {
                warn!("our voice stopped: {e}");
                ui.update(|s| s.audio_note = Some(format!("voice stopped: {e}")));
            }
        })
        .map_err(|e| MediaError::AudioDevice {
            device: "audio".into(),
            problem: format!("cannot start its thread: {e}"),
        })
}

/// The peer's voice on its way out: the speaker (or the clock) pulling
/// from the playout, and the recording.
pub(super) struct Playback {
    output: AudioOutput,
    recorder: Option<WavRecorder>,
}

impl Playback {
    /// Starts the output. `peer_time` moves a peer capture time onto our
    /// clock (call/clock.rs).
    pub(super) fn start(
        voice: Arc<Voice>,
        config: &AudioConfig,
        peer_time: impl Fn(u64) -> u64 + Send + 'static,
        ui: &UiHandle,
    ) -> Result<Option<Self>, MediaError> {
        if voice.playout.is_none() {
            return Ok(None);
        }
        let recorder = match &config.record {
            Some(path) => Some(WavRecorder::create(path)?),
            None => None,
        };
        let sink = recorder.as_ref().map(WavRecorder::sink);
        let pull_voice = voice.clone();
        let pull = Box::new(move |out: &mut [f32], device_latency: Duration| {
            let Some(playout) = &pull_voice.playout else {
                return;
            };
            let now = unix_micros(SystemTime::now());
            let pulled = playout
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pull(out, now);
            let delay = device_latency.as_micros() as u64;
            if let Some(capture) = pulled.playing_capture_us {
                let heard = now + delay;
                let latency = heard.saturating_sub(peer_time(capture));
                for h in [&pull_voice.latency_second, &pull_voice.latency_total] {
                    h.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(Duration::from_micros(latency));
                }
                // What the ear hears now was captured `delay` earlier.
                *pull_voice
                    .clock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some((capture.saturating_sub(delay), Instant::now()));
            }
            if let Some(echo) = &pull_voice.echo {
                echo.played(out);
            }
            Counters::add(&pull_voice.samples_played, out.len() as u64);
            pull_voice
                .level_peer
                .store(level_dbfs(out).to_bits(), Ordering::Relaxed);
            if let Some(sink) = &sink {
                // Waits if the disk is 10 s behind: a recording loses nothing.
                let _ = sink.send(out.to_vec());
            }
        });
        let (output, warning) = AudioOutput::start(config.speaker, pull)?;
        if let Some(e) = warning {
            warn!("no speaker ({e}); you will not hear the peer (see `vchat devices`; a recording still works)");
        }
        info!("playing the peer's voice on {}", output.describe());
        if voice.echo.is_some() && output.is_speaker() {
            info!("echo cancellation on (WebRTC AEC3): the peer will not hear itself");
        }
        let microphone = matches!(config.source, Some(AudioSourceSpec::Mic { .. }));
        if output.is_speaker() && microphone && voice.echo.is_none() {
            // --no-echo-cancel: said where it matters.
            ui.update(|s| {
                s.audio_note = Some("use headphones: on speakers the peer hears an echo".into())
            });
        }
        Ok(Some(Playback { output, recorder }))
    }

    /// Stops playing and closes the recording: its path and length in samples.
    pub(super) fn finish(self) -> Result<Option<(PathBuf, u64)>, MediaError> {
        self.output.stop();
        self.recorder.map(WavRecorder::finish).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[i64]) -> Vec<i64> {
        let mut micros: Vec<i64> = values.iter().map(|v| v * 1000).collect();
        micros.sort_unstable();
        micros
    }

    #[test]
    fn the_voice_waits_for_pictures_that_lag_for_seconds() {
        // Pictures about 95 ms behind, second after second: from the third,
        // halfway from the lower quartile (92 ms) to the aim (15 ms).
        let steady = ms(&[85, 90, 92, 95, 95, 97, 100, 105]);
        let mut lags = VecDeque::new();
        assert_eq!(next_sync_delay(0, &steady, &mut lags), Some(0));
        assert_eq!(next_sync_delay(0, &steady, &mut lags), Some(0));
        assert_eq!(next_sync_delay(0, &steady, &mut lags), Some(38_500));
        assert_eq!(next_sync_delay(0, &[], &mut lags), None);
    }

    #[test]
    fn a_stall_of_the_video_does_not_hold_the_voice_back() {
        let on_time = ms(&[-15, -15, -14, -14, -13, -13, -12, -12]);
        // A second in which the picture froze and caught up: on time, then
        // falling behind up to 310 ms (the lower quartile alone, 120 ms,
        // would look like a lag to wait for).
        let stalled = ms(&[-14, 60, 120, 180, 240, 290, 300, 310]);
        // A second all of whose pictures were 200 ms late (the stall
        // lasted the whole second), then the catching up.
        let frozen = ms(&[190, 195, 200, 200, 205, 205, 210, 210]);
        let mut lags = VecDeque::new();
        let mut delay = 0;
        for second in [&on_time, &on_time, &stalled, &frozen, &stalled, &on_time] {
            delay = next_sync_delay(delay, second, &mut lags).unwrap();
            assert_eq!(delay, 0);
        }
        // A delay taken for a lag that lasted comes down once it is over.
        assert!(next_sync_delay(100_000, &on_time, &mut lags).unwrap() < 100_000);
    }

    /// The overlay's level meters: ten steps from -60 dBFS (a quiet room)
    /// to full scale, ours first, and "muted" in place of a side's meter.
    #[test]
    fn the_overlay_meters_each_sides_level_and_shows_a_mute() {
        let voice = VoiceSnapshot {
            latency_p50: Some(Duration::from_millis(48)),
            level_ours_db: -30.0,
            level_peer_db: -90.0,
            ..VoiceSnapshot::default()
        };
        assert_eq!(
            voice.overlay_part(),
            "voice 48.0 ms |||||..... / .........."
        );
        let loud_and_muted = VoiceSnapshot {
            level_ours_db: 0.0,
            level_peer_db: -6.0,
            peer_muted: true,
            by_udp: true,
            ..voice
        };
        assert_eq!(
            loud_and_muted.overlay_part(),
            "voice udp 48.0 ms |||||||||| / muted"
        );
        let muted = VoiceSnapshot {
            muted: true,
            level_peer_db: -6.0,
            ..voice
        };
        assert_eq!(muted.overlay_part(), "voice 48.0 ms muted / |||||||||.");
    }
}
