//! Call statistics: what flows each way, what was dropped, round-trip time
//! and capture-to-display latency.
//!
//! Counters are atomics bumped by the pipeline's threads and tasks; once a
//! second the reporter turns their deltas into a [`Snapshot`] for the overlay
//! and `--stats json`. Latency goes into fixed-size histograms, so memory
//! stays flat however long the call lasts.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::clock::Estimate;

/// Latency histogram resolution: 50 µs buckets up to 2 s, where a call
/// should be, then 10 ms buckets up to 62 s, so a late call reads as late
/// as it is (a standing queue on a narrow link reaches seconds); 46 000
/// counters, 368 KB. Later frames land in the last bucket and the maximum
/// is kept exactly.
const FINE_BUCKET_US: u64 = 50;
const FINE_BUCKETS: usize = 40_000;
const FINE_RANGE_US: u64 = FINE_BUCKET_US * FINE_BUCKETS as u64;
const COARSE_BUCKET_US: u64 = 10_000;
const COARSE_BUCKETS: usize = 6_000;
const BUCKETS: usize = FINE_BUCKETS + COARSE_BUCKETS;

/// The bucket a latency of `us` falls in.
fn bucket_of(us: u64) -> usize {
    if us < FINE_RANGE_US {
        (us / FINE_BUCKET_US) as usize
    } else {
        let coarse = ((us - FINE_RANGE_US) / COARSE_BUCKET_US) as usize;
        FINE_BUCKETS + coarse.min(COARSE_BUCKETS - 1)
    }
}

/// The upper edge of bucket `i`, in µs.
fn upper_edge_us(i: usize) -> u64 {
    if i < FINE_BUCKETS {
        (i as u64 + 1) * FINE_BUCKET_US
    } else {
        FINE_RANGE_US + ((i - FINE_BUCKETS) as u64 + 1) * COARSE_BUCKET_US
    }
}

/// Counts of latencies in fixed buckets, for percentiles without storing samples.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        self.counts[bucket_of(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The latency below which `p` (0..=1) of the samples fall, rounded up to
    /// the bucket's upper edge; `None` with no samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((self.total as f64 * p).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = upper_edge_us(i);
                return Some(Duration::from_micros(upper.min(self.max_us.max(1))));
            }
        }
        Some(Duration::from_micros(self.max_us))
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Forgets all samples, keeping the allocation.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max_us = 0;
    }
}

/// Counters shared by the whole pipeline.
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub frames_shown: AtomicU64,
    /// Frames the source skipped because the pipeline was busy (sequence gaps).
    pub dropped_at_capture: AtomicU64,
    /// Frames of ours dropped because they were older than `--max-latency`
    /// before being encoded or sent.
    pub too_late: AtomicU64,
    /// Encoded frames that waited for the socket past `--max-latency` (a
    /// rate the link cannot carry): dropped, or for an inter-coded format
    /// whose next frames stand on them, sent late.
    pub late_for_link: AtomicU64,
    /// Frames of ours not encoded because the link had not yet taken the
    /// one before (inter-coded formats skip before encoding, never after).
    pub link_busy: AtomicU64,
    /// Keyframes we sent (the first, periodic ones, and those asked for).
    pub keyframes_sent: AtomicU64,
    /// Pictures the H.264 encoder skipped to hold its target bitrate.
    pub rate_skipped: AtomicU64,
    /// Share of the media thread's time spent encoding over the last
    /// second, percent (0 before the first second).
    pub encode_load_percent: AtomicU64,
    /// The size of the last frame we sent, width << 32 | height (0 before).
    pub size_out: AtomicU64,
    /// Frames received that could not be decoded because the decoder was
    /// waiting for a keyframe.
    pub awaiting_keyframe: AtomicU64,
    /// Last round-trip time in µs from ping and pong; 0 until the first pong.
    pub rtt_us: AtomicU64,
    /// The kernel's smoothed RTT of the link in µs (TCP_INFO); 0 when
    /// unknown. Preferred to the ping's: a pong can queue behind video.
    pub kernel_rtt_us: AtomicU64,
    /// What the link delivered (bytes the peer acknowledged, from
    /// TCP_INFO) over the last 200 ms, bits per second; 0 when unknown.
    pub acked_rate: AtomicU64,
    /// The bitrate our H.264 encoder aims at, bits per second (0 while we
    /// send no H.264: raw and JPEG have no bitrate to steer).
    pub target_bitrate: AtomicU64,
    /// The peer's clock minus ours in µs (call/clock.rs), its error bound
    /// (0 until a pong said the peer's time) and the correction applied to
    /// latency.
    clock_offset_us: AtomicI64,
    clock_error_us: AtomicU64,
    clock_correction_us: AtomicI64,
    /// The first decoded frame's capture time (sender's clock) and when the
    /// last frame was decoded (ours), in µs since the Unix epoch; 0 until
    /// then. See [`Counters::video_span`].
    first_capture_us: AtomicU64,
    last_decoded_us: AtomicU64,
    latency_second: Mutex<Histogram>,
    latency_total: Mutex<Histogram>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The link's round-trip time: the kernel's when it is known, else the
    /// last ping's, once a pong has come back.
    pub fn rtt(&self) -> Option<Duration> {
        match (Self::get(&self.kernel_rtt_us), Self::get(&self.rtt_us)) {
            (0, 0) => None,
            (0, us) | (us, _) => Some(Duration::from_micros(us)),
        }
    }

    /// Where [`Counters::rtt`] comes from.
    pub fn rtt_source(&self) -> &'static str {
        match (Self::get(&self.kernel_rtt_us), Self::get(&self.rtt_us)) {
            (0, 0) => "none",
            (0, _) => "ping",
            _ => "kernel",
        }
    }

    /// Keeps the latest estimate of the peer's clock.
    pub fn set_clock(&self, estimate: Estimate) {
        self.clock_offset_us
            .store(estimate.offset_us, Ordering::Relaxed);
        self.clock_correction_us
            .store(estimate.correction_us(), Ordering::Relaxed);
        self.clock_error_us
            .store(estimate.error_us.max(1), Ordering::Relaxed);
    }

    /// The latest estimate of the peer's clock, once a pong gave one.
    pub fn clock(&self) -> Option<Estimate> {
        match Self::get(&self.clock_error_us) {
            0 => None,
            error_us => Some(Estimate {
                offset_us: self.clock_offset_us.load(Ordering::Relaxed),
                error_us,
            }),
        }
    }

    /// A capture time on the peer's clock (`video.time_us`) on ours: the
    /// same number while the clocks agree or nothing is known.
    pub fn peer_time_on_our_clock(&self, peer_us: u64) -> u64 {
        let correction = i128::from(self.clock_correction_us.load(Ordering::Relaxed));
        (i128::from(peer_us) - correction).clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Notes a decoded frame's capture time and the time it was decoded.
    pub fn record_decoded(&self, capture_us: u64, decoded_us: u64) {
        let _ = self.first_capture_us.compare_exchange(
            0,
            capture_us,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.last_decoded_us.store(decoded_us, Ordering::Relaxed);
    }

    /// From the capture of the first frame decoded to the decoding of the
    /// last: how long video flowed, without the call's set-up and hang-up.
    /// Meaningful only when both peers share a clock (as in `vchat bench`).
    pub fn video_span(&self) -> Option<Duration> {
        let first = Self::get(&self.first_capture_us);
        let last = Self::get(&self.last_decoded_us);
        (first != 0 && last > first).then(|| Duration::from_micros(last - first))
    }

    /// Records a capture-to-display latency.
    pub fn record_latency(&self, latency: Duration) {
        for h in [&self.latency_second, &self.latency_total] {
            h.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(latency);
        }
    }

    /// The whole call's latency histogram.
    pub fn latency_total(&self) -> Histogram {
        self.latency_total
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn take_second(&self) -> (Option<Duration>, Option<Duration>) {
        let mut h = self
            .latency_second
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = (h.percentile(0.5), h.percentile(1.0));
        h.clear();
        result
    }
}

/// Values that only grow, read together so deltas line up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub frames_shown: u64,
    pub dropped_out: u64,
    pub dropped_in: u64,
    /// Frames of ours older than `--max-latency`, dropped unsent.
    pub too_late: u64,
    /// Frames of ours skipped before encoding because the link was busy.
    pub link_busy: u64,
    /// Encoded frames of ours that waited for the socket past
    /// `--max-latency` (dropped, or sent late when the next stand on them).
    pub late_out: u64,
    pub keyframes_sent: u64,
    /// Pictures the encoder skipped to hold its bitrate.
    pub rate_skipped: u64,
    /// Received frames skipped while the decoder waited for a keyframe.
    pub awaiting_keyframe: u64,
}

impl Totals {
    /// Adds the counts to a JSON object, under the names every `--stats
    /// json` line (per second and the summary) uses for them.
    pub fn add_to_json(&self, object: &mut serde_json::Value) {
        if let Some(map) = object.as_object_mut() {
            for (name, value) in [
                ("frames_out", self.frames_sent),
                ("frames_in", self.frames_received),
                ("frames_shown", self.frames_shown),
                ("dropped_out", self.dropped_out),
                ("dropped_in", self.dropped_in),
                ("too_late", self.too_late),
                ("link_busy", self.link_busy),
                ("late_out", self.late_out),
                ("keyframes_out", self.keyframes_sent),
                ("rate_skipped", self.rate_skipped),
                ("awaiting_keyframe", self.awaiting_keyframe),
            ] {
                map.insert(name.to_owned(), value.into());
            }
        }
    }
}

/// Capture-to-decoded latency over a whole call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Frames in the figures.
    pub samples: u64,
}

/// One second (or any interval) of the call, as shown and printed.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Seconds since the call connected.
    pub elapsed: f64,
    pub fps_out: f64,
    pub fps_in: f64,
    pub mbit_out: f64,
    pub mbit_in: f64,
    pub totals: Totals,
    pub rtt: Option<Duration>,
    /// "kernel" (TCP_INFO), "ping" or "none".
    pub rtt_source: &'static str,
    /// The rate control's target for our video, bits per second.
    pub target_bitrate: Option<u64>,
    /// What the link delivered over the last 200 ms, bits per second.
    pub acked_rate: Option<u64>,
    /// Mean size of the frames we sent this interval, bytes.
    pub frame_bytes_out: Option<u64>,
    /// The size of the last frame we sent.
    pub size_out: Option<(u32, u32)>,
    /// Share of the media thread's time spent encoding, percent.
    pub encode_load_percent: Option<u64>,
    pub latency_p50: Option<Duration>,
    pub latency_max: Option<Duration>,
    /// The peer's clock against ours, once a pong said its time.
    pub clock: Option<Estimate>,
    /// Voice, when audio flows either way.
    pub voice: Option<super::VoiceSnapshot>,
}

impl Snapshot {
    /// Builds a snapshot from two readings `interval` apart.
    pub fn between(
        before: Totals,
        now: Totals,
        interval: Duration,
        elapsed: Duration,
        counters: &Counters,
    ) -> Snapshot {
        let secs = interval.as_secs_f64().max(1e-6);
        let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / secs;
        let (latency_p50, latency_max) = counters.take_second();
        Snapshot {
            elapsed: elapsed.as_secs_f64(),
            fps_out: rate(before.frames_sent, now.frames_sent),
            fps_in: rate(before.frames_received, now.frames_received),
            mbit_out: rate(before.bytes_sent, now.bytes_sent) * 8.0 / 1e6,
            mbit_in: rate(before.bytes_received, now.bytes_received) * 8.0 / 1e6,
            totals: now,
            rtt: counters.rtt(),
            rtt_source: counters.rtt_source(),
            target_bitrate: Some(Counters::get(&counters.target_bitrate)).filter(|&b| b > 0),
            acked_rate: Some(Counters::get(&counters.acked_rate)).filter(|&b| b > 0),
            frame_bytes_out: (now.frames_sent > before.frames_sent).then(|| {
                now.bytes_sent.saturating_sub(before.bytes_sent)
                    / (now.frames_sent - before.frames_sent)
            }),
            size_out: match Counters::get(&counters.size_out) {
                0 => None,
                packed => Some(((packed >> 32) as u32, packed as u32)),
            },
            encode_load_percent: Some(Counters::get(&counters.encode_load_percent))
                .filter(|&p| p > 0),
            latency_p50,
            latency_max,
            clock: counters.clock(),
            voice: None,
        }
    }

    /// One JSON object (one line) for `--stats json`.
    pub fn to_json(&self, peer: &str) -> String {
        let ms = json_ms;
        let mut line = serde_json::json!({
            "event": "stats",
            "elapsed_s": (self.elapsed * 100.0).round() / 100.0,
            "peer": peer,
            "fps_out": (self.fps_out * 10.0).round() / 10.0,
            "fps_in": (self.fps_in * 10.0).round() / 10.0,
            "mbit_out": (self.mbit_out * 100.0).round() / 100.0,
            "mbit_in": (self.mbit_in * 100.0).round() / 100.0,
            "rtt_ms": ms(self.rtt),
            "rtt_source": self.rtt_source,
            "target_kbit": self.target_bitrate.map(|b| b / 1000),
            "acked_kbit": self.acked_rate.map(|b| b / 1000),
            "frame_bytes_out": self.frame_bytes_out,
            "size_out": self.size_out.map(|(w, h)| format!("{w}x{h}")),
            "encode_load_pct": self.encode_load_percent,
            "latency_p50_ms": ms(self.latency_p50),
            "latency_max_ms": ms(self.latency_max),
            "latency_clock": latency_clock(self.clock),
            "clock_offset_ms": self.clock.map(|c| c.offset_us as f64 / 1e3),
            "clock_error_ms": self.clock.map(|c| c.error_us as f64 / 1e3),
        });
        self.totals.add_to_json(&mut line);
        if let Some(voice) = &self.voice {
            voice.add_to_json(&mut line);
        }
        line.to_string()
    }

    /// Lines for the window overlay (the rate control's only while we
    /// send H.264, the one format it steers).
    pub fn overlay_lines(&self) -> Vec<String> {
        let ms = text_ms;
        let mut lines = vec![
            format!(
                "out {:.1} fps {:.1} Mbit/s   in {:.1} fps {:.1} Mbit/s",
                self.fps_out, self.mbit_out, self.fps_in, self.mbit_in
            ),
            format!(
                "rtt {}   latency {}{}   dropped out {} in {}",
                ms(self.rtt),
                ms(self.latency_p50),
                match self.clock {
                    Some(c) if !c.clocks_agree() => format!(
                        " (peer clock {:+.1} s, corrected)",
                        c.offset_us as f64 / 1e6
                    ),
                    _ => String::new(),
                },
                self.totals.dropped_out,
                self.totals.dropped_in
            ),
        ];
        if self.target_bitrate.is_some() {
            lines.push(format!(
                "h264 {} {}  acked {}  {}/frame  skipped {}  encoding {}",
                self.size_out
                    .map_or_else(|| "-".into(), |(w, h)| format!("{w}x{h}")),
                kbit(self.target_bitrate),
                kbit(self.acked_rate),
                self.frame_bytes_out
                    .map_or_else(|| "-".into(), |b| format!("{:.1} KB", b as f64 / 1000.0)),
                self.totals.link_busy + self.totals.too_late + self.totals.rate_skipped,
                self.encode_load_percent
                    .map_or_else(|| "-".into(), |p| format!("{p}%"))
            ));
        }
        // Voice joins the latency line: the overlay must not grow down
        // over the picture.
        let flowing = self.voice.filter(|v| v.packets_in + v.packets_out > 0);
        if let (Some(voice), Some(line)) = (flowing, lines.get_mut(1)) {
            line.push_str("   ");
            line.push_str(&voice.overlay_part());
        }
        lines
    }
}

/// Which clock the latency figures stand on, said beside them in `--stats
/// json`. They run from the sender's capture (its wall clock) to our
/// decoding (ours):
/// - `"same_or_agreeing"`: the peer's clock is ours within what a round trip
///   can tell (always so on one machine: the demo, the tests, the bench and
///   the network lab), so the figures are taken as they are;
/// - `"corrected"`: the peer's clock is provably off, and the figures are
///   moved onto ours by `clock_offset_ms`, within `clock_error_ms`;
/// - `"unchecked"`: no pong with the peer's time yet (the first second, or a
///   peer older than protocol version 3).
pub fn latency_clock(clock: Option<Estimate>) -> &'static str {
    match clock {
        None => "unchecked",
        Some(c) if c.clocks_agree() => "same_or_agreeing",
        Some(_) => "corrected",
    }
}

/// Bits per second for people: "1.45 Mbit/s", "850 kbit/s", or "-".
fn kbit(bits: Option<u64>) -> String {
    match bits {
        Some(b) if b >= 1_000_000_000 => format!("{:.1} Gbit/s", b as f64 / 1e9),
        Some(b) if b >= 1_000_000 => format!("{:.2} Mbit/s", b as f64 / 1e6),
        Some(b) => format!("{} kbit/s", b / 1000),
        None => "-".into(),
    }
}

/// A duration for JSON output: milliseconds with two decimals, or null.
pub fn json_ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e5).round() / 1e2)
}

/// A duration for people: "1.3 ms", or "-" when not measured yet.
pub fn text_ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

/// The capture clock, defined with the media that is stamped by it.
pub use crate::media::unix_micros;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(0.5), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile(0.5).unwrap();
        assert!(p50 >= Duration::from_millis(50) && p50 <= Duration::from_micros(50_050));
        let p99 = h.percentile(0.99).unwrap();
        assert!(p99 >= Duration::from_millis(99) && p99 <= Duration::from_micros(99_050));
        assert_eq!(h.percentile(1.0).unwrap(), Duration::from_millis(100));
        h.record(Duration::from_secs(100)); // beyond the range: kept in the last bucket
        assert_eq!(h.count(), 101);
        assert_eq!(h.percentile(1.0).unwrap(), Duration::from_secs(62));
    }

    #[test]
    fn seconds_of_latency_read_as_seconds() {
        // A standing queue: most frames 5-12 s late. This histogram used
        // to stop at 2 s and say 2000 ms for all of them.
        let mut h = Histogram::default();
        for tenth in 50..=120 {
            h.record(Duration::from_millis(tenth * 100));
        }
        let p50 = h.percentile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_millis(8_500) && p50 <= Duration::from_millis(8_510),
            "{p50:?}"
        );
        let p99 = h.percentile(0.99).unwrap();
        assert!(
            p99 >= Duration::from_millis(11_900) && p99 <= Duration::from_millis(12_000),
            "{p99:?}"
        );
        assert_eq!(h.percentile(1.0).unwrap(), Duration::from_secs(12));
        // Just below and above the fine range's edge.
        let mut edge = Histogram::default();
        edge.record(Duration::from_micros(1_999_990));
        edge.record(Duration::from_micros(2_000_010));
        assert_eq!(edge.percentile(0.5).unwrap(), Duration::from_secs(2));
        assert_eq!(
            edge.percentile(1.0).unwrap(),
            Duration::from_micros(2_000_010)
        );
    }

    #[test]
    fn snapshot_rates_and_json() {
        let counters = Counters::default();
        counters.record_latency(Duration::from_micros(1500));
        let before = Totals::default();
        let now = Totals {
            frames_sent: 30,
            bytes_sent: 1_250_000,
            frames_received: 15,
            ..Totals::default()
        };
        let snap = Snapshot::between(
            before,
            now,
            Duration::from_secs(1),
            Duration::from_secs(3),
            &counters,
        );
        assert_eq!(snap.fps_out, 30.0);
        assert_eq!(snap.fps_in, 15.0);
        assert_eq!(snap.mbit_out, 10.0);
        assert_eq!(snap.overlay_lines().len(), 2, "no rate line without H.264");
        let h264 = Snapshot {
            target_bitrate: Some(1_500_000),
            acked_rate: Some(2_000_000_000),
            encode_load_percent: Some(37),
            ..snap.clone()
        };
        assert_eq!(
            h264.overlay_lines()[2],
            "h264 - 1.50 Mbit/s  acked 2.0 Gbit/s  41.7 KB/frame  skipped 0  encoding 37%"
        );
        let json: serde_json::Value = serde_json::from_str(&h264.to_json("bob")).unwrap();
        assert_eq!(json["encode_load_pct"], 37);
        let json: serde_json::Value = serde_json::from_str(&snap.to_json("bob")).unwrap();
        assert_eq!(json["peer"], "bob");
        assert_eq!(json["frames_out"], 30);
        assert_eq!(json["latency_p50_ms"], 1.5);
        assert!(json["rtt_ms"].is_null());
    }
}
