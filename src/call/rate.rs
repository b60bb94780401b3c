//! Rate control: how many bits per second our H.264 video may use, from
//! what the kernel knows about the link.
//!
//! Why here and why so: a video call over TCP has no packet loss to react
//! to, only queues. When we send faster than the path carries, bytes wait
//! in the kernel and in the bottleneck's buffer, the RTT grows, and the
//! writer cannot take the next frame (the media thread skips it). The
//! [`RateController`] is I/O-free: the link's sampler feeds it a
//! [`LinkReading`] (TCP_INFO plus our own counters) every
//! [`SAMPLE_INTERVAL`], and it answers with the encoder's target bitrate.
//!
//! What it takes from each of the designs the issue names:
//! - **GCC** (draft-ietf-rmcat-gcc): a delay-based detector (queueing delay
//!   = smoothed RTT above the path's minimum), multiplicative decrease to
//!   0.85 of the rate the path delivered (over the last second when its
//!   queue shows; never below half the target in one step), then a hold, multiplicative increase (12 % per second) far
//!   from the last congested rate and a slower climb (3 %) near it, so it
//!   neither oscillates nor stays low.
//! - **SCReAM** (RFC 8298): a queue-delay *target* rather than zero delay,
//!   and the sender's own backlog (frames skipped because the link still
//!   held the last one, bytes unsent in the kernel) as a congestion signal:
//!   for a sender over TCP, that backlog is what grows first.
//! - **GCC**'s delay *gradient* too, coarsely: a queue that has grown over
//!   two readings eases the target by 5 % per reading before it reaches
//!   the threshold (the voice datagrams wait in that queue).
//! - **BBR**: the path's bottleneck bandwidth as the largest delivery rate
//!   the kernel measured while we were not application-limited (and not
//!   held down by our own pacing, nor by the congestion window's restart
//!   after a retransmission timeout); the target never goes above 0.9 of
//!   it.
//!   The link's rate is also what the peer acknowledged over the second
//!   before the bottleneck's queue showed or grew (the kernel's samples
//!   read 10-20 % high when acknowledgements come bunched; only on paths of
//!   20 ms or more, only from a second in which we offered the link
//!   about the target, and a queue that only grew, still short, only from
//!   a second that delivered most of the kernel's measured rate): for 20 s
//!   after,
//!   the target stays under 0.85 of it, the rest left for the voice,
//!   keyframes and a retransmission timeout's backlog; the socket's pacing
//!   ([`RateController::pacing_rate`]) never goes above 0.85 of the
//!   highest rate measured over the last 30 s. And BBR's (and TCP's)
//!   *startup*: until the link first says "enough" (a queue of 15 ms,
//!   another congestion signal, the bottleneck cap, or [`STARTUP_LIMIT`]),
//!   the target grows 50 % a second instead of 12 %, so a call on a wide
//!   link has a sharp picture within seconds, not after 15, and the size
//!   ladder does not shrink the picture on the start rate's say-so.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often the link's sampler reads TCP_INFO and updates the target.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// The lowest target: below it a picture no longer moves usefully.
pub const MIN_BITRATE: u32 = 100_000;

/// The highest target when `--max-bitrate` does not say: good 1080p30.
pub const DEFAULT_MAX_BITRATE: u32 = 4_000_000;

/// Queueing delay (smoothed RTT minus the path's minimum) that counts as
/// congestion: small against the 400 ms latency budget, large against the
/// jitter of a quiet link. The voice datagrams wait in the same queue; 20
/// ms was tried for them (on the 2 Mbit/s, 1 % loss lab link: voice transit
/// p95 127 ms instead of 162, video p99 432 ms instead of 543 over 60 s),
/// but it halved the video's rate over a 20 s call (0.79 Mbit/s against
/// 1.48) while still leaving gaps in the voice: see BENCHMARKS.md, "Voice".
const QUEUE_DELAY_TARGET: Duration = Duration::from_millis(40);

/// A queue this deep that has grown over the last two readings (by
/// [`QUEUE_GROWTH`] or more) means the target has passed the link's rate
/// (GCC's delay *gradient*): the target eases by [`EASE`] per reading
/// instead of climbing on until the queue reaches
/// [`QUEUE_DELAY_TARGET`]. The kernel's RTT is smoothed and read every
/// 200 ms, so by the time the 40 ms threshold is seen the queue, where the
/// voice datagrams wait too, has gone well past it.
const QUEUE_GROWING_FROM: Duration = Duration::from_millis(10);

/// How much the queue must have grown over two readings to count as
/// growing: more than the smoothed RTT's wander on a quiet link.
const QUEUE_GROWTH: Duration = Duration::from_millis(4);

/// The factor a growing queue takes off the target per reading: small,
/// because a growing queue comes before a full one; three readings in a
/// row come to GCC's 0.85.
const EASE: f64 = 0.95;

/// Share of pictures skipped because the link was busy, within one
/// reading, above which the link is too slow for the current rate (a
/// keyframe's own skips are forgiven separately, see `KEYFRAME_GRACE`).
/// One picture in six: the frame rate is the lever after the bitrate, not
/// instead of it.
const BUSY_SHARE: f64 = 0.15;

/// How long a bottleneck estimate bounds the target: a couple of seconds
/// of a link's life (BBR keeps its maximum for about 10 round trips).
const BOTTLENECK_MEMORY: Duration = Duration::from_secs(2);

/// A delivery rate under this share of what the link delivered over the
/// last second measures our congestion window, not the link: after a
/// retransmission timeout the kernel restarts from one packet a round trip
/// and reports that as a rate that was not application-limited. On the 2
/// Mbit/s, 100 ms, 1 % loss lab link one such sample (0.11 Mbit/s, just
/// after 1.5 Mbit/s had been delivered over the second) became the
/// bottleneck, when the last one had been forgotten: the target went from
/// 1.63 to 0.10 Mbit/s in one reading, the pacing with it, the backlog of
/// 36 KB took seconds to leave, and the video needed 30 s to climb back.
const BOTTLENECK_DELIVERED_SHARE: f64 = 0.5;

/// How much faster than the video's target bitrate the socket may send
/// while the link's own rate is unknown or well above it: a frame leaves
/// spread over most of a frame's time instead of in one burst at the
/// line's rate, so the bottleneck's queue, where the voice datagrams wait
/// too, barely grows (on the 2 Mbit/s lab link a 60 KB keyframe at a 1.4
/// Mbit/s target queued 240 ms there unpaced). WebRTC paces at 2.5 times.
/// Closer to the target is too close: at 1.2 a frame a little larger than
/// the average still waits for the one before, the media thread skips
/// pictures, the rate control takes that for congestion, and on the 1.5
/// Mbit/s, 500 ms lab link the video settled at 0.2 Mbit/s instead of 0.5.
const PACING_FACTOR: f64 = 1.5;

/// Never above this share of the link's measured rate (see
/// `learn_link_rate`):
/// whatever leaves faster than the link carries waits in its queue, in
/// front of the voice. On the 2 Mbit/s, 1 % loss lab link, after each
/// retransmission timeout 30-60 KB of video waited in the kernel and left
/// at 1.5 times a 1.55 Mbit/s target; the voice's transit rose by 100 ms
/// for most of a second, every 10 s or so. 0.85 rather than 0.95: the
/// voice datagrams need their share of the same link, and the measured rate
/// may read high (see [`DELIVERED_WINDOW`]).
const PACING_LINK_SHARE: f64 = 0.85;

/// For a while after the bottleneck's queue last showed, the target stays
/// under this share of what the link delivered then: the rest is for the
/// voice beside the video, the keyframes, and a retransmission timeout's
/// backlog, which otherwise all wait in that queue in front of the voice
/// (on the 2 Mbit/s, 1 % loss lab link, a keyframe after a timeout at a
/// 1.7 Mbit/s target held the voice up by 50 ms for a second).
const TARGET_LINK_SHARE: f64 = 0.85;

/// How long that bound holds: long against the climb back from a decrease
/// (a few seconds), short enough that a link that widened is found again
/// (the target then climbs until the queue shows once more).
const QUEUE_RATE_MEMORY: Duration = Duration::from_secs(20);

/// ...and never below this much above the target, so a frame still leaves
/// in less than its frame time.
const PACING_FLOOR_FACTOR: f64 = 1.1;

/// How long a measured link rate bounds the pacing: longer than the 10 s
/// between two keyframes, whose bursts are what measure it.
const LINK_RATE_MEMORY: Duration = Duration::from_secs(30);

/// A delivery rate at or above this share of our own pacing rate was set
/// by the pacing, not by the link: it says the link carries at least that.
const PACING_LIMITED_SHARE: f64 = 0.9;

/// Below this share of the target actually sent, the target does not grow
/// (GCC's rule against probing with an application-limited stream).
const APP_LIMITED_SHARE: f64 = 0.5;

/// A second in which we wrote less than this share of the target, with no
/// picture held back for the link, did not offer the link enough to fill
/// it: a queue then is not ours, and what was delivered is only what we
/// wrote. On a loopback relay starved by a busy CPU the encoder wrote 1.0
/// Mbit/s of a 1.6 Mbit/s target, with nothing waiting in the kernel, while
/// the RTT rose 4 ms; that second's 1.1 Mbit/s was learnt as the link's
/// rate and bounded the video on a 2 Mbit/s link for the rest of the call.
/// An encoder that meets its target writes 85-105 % of it over a second.
const OFFERED_SHARE: f64 = 0.8;

/// A queue that is growing but not yet [`QUEUE_DELAY_TARGET`] deep teaches
/// the link's rate only if the second before it delivered at least this
/// share of the rate the kernel measured for the link (which reads 10-20 %
/// high; a full link delivers 0.8-0.9 of it). On the 2 Mbit/s, 100 ms, 1 %
/// loss lab link, after a retransmission timeout had cut the target to
/// 0.72 Mbit/s, the smoothed RTT wandered 106, 108, 111 ms over a path of
/// 100 ms while 0.88 Mbit/s went out and 1.77 was the link's measured rate:
/// that second became the bound, and held the video at 0.74 Mbit/s for
/// 20 s. A link that really narrowed soon queues past the threshold, and
/// that teaches its rate as before.
const GROWING_FULL_SHARE: f64 = 0.6;

/// How long after a keyframe its own queue is forgiven: a 150 KB keyframe
/// takes 0.4 s of a 3 Mbit/s link.
const KEYFRAME_GRACE: Duration = Duration::from_secs(1);

/// Growth per second far from the last congested rate: GCC's 8 % made a
/// climb from 0.7 to 4 Mbit/s take 23 s in the lab; 12 % takes 15 s.
const FAR_GROWTH: f64 = 0.12;

/// Growth per second in startup, before the link has first pushed back:
/// from the 0.8 Mbit/s start, 2.7 Mbit/s after 3 s.
const STARTUP_GROWTH: f64 = 0.5;

/// In startup a queue this deep is already congestion: the target grows
/// 50 % a second, so by the time the smoothed RTT shows even this much the
/// rate has passed the link by a fifth (on the 2 Mbit/s, 100 ms lab link
/// the 40 ms threshold came 200 ms later, the first cut went only to the
/// link's rate, and the voice waited 100 ms more for 2.6 s).
const STARTUP_QUEUE_LIMIT: Duration = Duration::from_millis(15);

/// ...on paths whose minimum RTT is at least this.
const STARTUP_QUEUE_LIMIT_FROM_RTT: Duration = Duration::from_millis(20);

/// The link's rate is learnt from a queue (the bound [`QUEUE_RATE_MEMORY`]
/// holds, and the pacing's cap) only on paths whose minimum RTT is at
/// least this. On a LAN or a loopback relay a queue of a few milliseconds
/// is as likely the machine's, or a backlog leaving after a stall, and a
/// bound learnt from one second of it held the video at 0.9-1.0 Mbit/s on
/// a 2 Mbit/s relay for the rest of a call (CI, and a 400 ms stall 1 s
/// into a call here); such paths keep the cut and the slow climb near the
/// rate that queued. Every lab link (40-500 ms) is past it.
const LEARN_FROM_QUEUE_RTT: Duration = Duration::from_millis(20);

/// The path's minimum RTT as of `reading` (its RTT when the kernel has
/// none yet).
fn reading_min_rtt(reading: &LinkReading) -> Duration {
    reading.min_rtt.unwrap_or(reading.rtt)
}

/// What the path delivered is measured over this long for a decrease: one
/// 200 ms reading catches a stall or a burst of acknowledgements, and the
/// kernel's own delivery rate reads 10-20 % above a 2 Mbit/s bottleneck
/// (acknowledgements come bunched), which made the first cut after an
/// overshoot land on the link's rate instead of below it.
const DELIVERED_WINDOW: Duration = Duration::from_secs(1);

/// Startup ends by this long after the first reading, pushed back or not.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(3);

/// A keyframe's queue is forgiven only if the keyframe before it was at
/// least this long ago: keyframes that keep coming (a receiver asking again
/// and again because frames arrive too late) are the load itself.
const KEYFRAME_SPACING_FOR_GRACE: Duration = Duration::from_secs(2);

/// After a decrease, how long the next one waits: the decrease needs about
/// a round trip and a frame or two to show in the readings.
const DECREASE_HOLD: Duration = Duration::from_millis(600);

/// What the link's sampler read, at one moment. Counters are totals since
/// the link started; the controller takes differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkReading {
    pub at: Instant,
    /// The kernel's smoothed RTT.
    pub rtt: Duration,
    /// The smallest RTT the kernel saw on this connection.
    pub min_rtt: Option<Duration>,
    /// The kernel's latest delivery rate, bytes per second.
    pub delivery_rate: Option<u64>,
    /// Whether that rate was measured while we sent less than the path takes.
    pub app_limited: bool,
    /// Bytes we wrote that the kernel has not sent yet.
    pub notsent_bytes: u32,
    /// Bytes the peer acknowledged (the link's whole life).
    pub bytes_acked: Option<u64>,
    /// Pictures we skipped because the link held the previous frame.
    pub pictures_skipped: u64,
    /// Pictures we encoded.
    pub pictures_encoded: u64,
    /// Video bytes we sent (the link's whole life).
    pub bytes_sent: u64,
    /// Keyframes we sent.
    pub keyframes_sent: u64,
    /// Pictures the encoder skipped to hold its bitrate.
    pub pictures_rate_skipped: u64,
    /// Encoded frames that waited for the socket past the latency budget
    /// (dropped, or sent late when the next frames stand on them).
    pub pictures_late: u64,
}

/// Why the target last moved, for the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateState {
    /// Climbing fast: far below the last rate the link could not carry.
    Probing,
    /// Climbing slowly: near the last rate the link could not carry.
    Converging,
    /// Cut back: the link queued.
    Decreased,
    /// Eased off: the queue is growing, not yet long.
    Easing,
}

/// The counters at one reading, kept for what happened over the last
/// [`DELIVERED_WINDOW`].
#[derive(Debug, Clone, Copy)]
struct WindowMark {
    at: Instant,
    acked: u64,
    sent: u64,
    /// Pictures skipped or late for the link, so far.
    held_back: u64,
}

/// What happened over the last [`DELIVERED_WINDOW`], in bits per second.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// What the peer acknowledged.
    delivered: f64,
    /// What we wrote.
    sent: f64,
    /// Whether any picture was skipped or late for the link.
    held_back: bool,
}

/// The target bitrate's control loop; see the module doc.
#[derive(Debug, Clone)]
pub struct RateController {
    target: f64,
    max: u32,
    state: RateState,
    previous: Option<LinkReading>,
    /// The queueing delay of the reading before `previous`, for its trend.
    earlier_queue: Option<Duration>,
    last_decrease: Option<Instant>,
    /// The rate the path delivered when it last congested (bits/s).
    congested_rate: Option<f64>,
    /// When we last sent a keyframe: for a while after it, the queue it
    /// makes is its own, not the link's.
    last_keyframe: Option<Instant>,
    /// Whether that keyframe's queue is forgiven (it came long enough
    /// after the one before).
    keyframe_forgiven: bool,
    /// What the link delivered over the last reading (bits/s), for the stats.
    acked_rate: Option<f64>,
    /// The last reading found the encoder using well under its target
    /// without skipping: the picture is cheap to code.
    content_limited: bool,
    /// The largest non-app-limited delivery rate (bits/s) and when it was
    /// seen: BBR's bottleneck bandwidth, forgotten after `BOTTLENECK_MEMORY`.
    bottleneck: Option<(f64, Instant)>,
    /// When the first reading came, and whether startup is still on.
    first_reading: Option<Instant>,
    starting: bool,
    /// The link's rate as the kernel measured it while we had more to send
    /// than it took (bits/s), and when it was last confirmed.
    link_rate: Option<(f64, Instant)>,
    /// What the link delivered over the second before its queue last
    /// showed (bits/s), and when: the target's bound for
    /// [`QUEUE_RATE_MEMORY`].
    queue_rate: Option<(f64, Instant)>,
    /// The counters of recent readings, oldest first, for what happened
    /// over [`DELIVERED_WINDOW`].
    window_marks: VecDeque<WindowMark>,
}

impl RateController {
    /// Starts at `start` bits per second, never above `max`.
    pub fn new(start: u32, max: u32) -> Self {
        let max = max.max(MIN_BITRATE);
        RateController {
            target: f64::from(start.clamp(MIN_BITRATE, max)),
            max,
            state: RateState::Probing,
            previous: None,
            earlier_queue: None,
            last_decrease: None,
            congested_rate: None,
            last_keyframe: None,
            keyframe_forgiven: false,
            acked_rate: None,
            content_limited: false,
            bottleneck: None,
            first_reading: None,
            starting: true,
            link_rate: None,
            window_marks: VecDeque::new(),
            queue_rate: None,
        }
    }

    /// Whether the controller is still in startup: the link has not yet
    /// pushed back and [`STARTUP_LIMIT`] has not passed. The target is
    /// then the start rate's guess, climbing fast; nothing should be
    /// shrunk to fit it.
    pub fn starting(&self) -> bool {
        self.starting
    }

    /// Whether the encoder needs less than its target (the picture is cheap
    /// to code), as of the last reading.
    pub fn content_limited(&self) -> bool {
        self.content_limited
    }

    /// What the link delivered (bytes the peer acknowledged) over the last
    /// reading, bits per second.
    pub fn acked_rate(&self) -> Option<u64> {
        self.acked_rate.map(|rate| rate as u64)
    }

    /// The link's measured rate (see `learn_link_rate`), bits per second.
    pub fn link_rate(&self) -> Option<u64> {
        self.link_rate.map(|(rate, _)| rate as u64)
    }

    /// The target, bits per second.
    pub fn target(&self) -> u32 {
        self.target as u32
    }

    pub fn state(&self) -> RateState {
        self.state
    }

    /// A new link (a reconnect): its RTT and counters start afresh; what
    /// the old path carried may not hold for the new one.
    pub fn new_link(&mut self) {
        self.previous = None;
        self.earlier_queue = None;
        self.bottleneck = None;
        self.link_rate = None;
        self.window_marks.clear();
        self.queue_rate = None;
    }

    /// The rate the socket may send at, bits per second: [`PACING_FACTOR`]
    /// times the target, but not above [`PACING_LINK_SHARE`] of the link's
    /// measured rate, nor below [`PACING_FLOOR_FACTOR`] times the target.
    pub fn pacing_rate(&self) -> u64 {
        let target = self.target;
        let mut pacing = target * PACING_FACTOR;
        if let Some((link, _)) = self.link_rate {
            pacing = pacing.min(PACING_LINK_SHARE * link);
        }
        pacing.max(target * PACING_FLOOR_FACTOR) as u64
    }

    /// BBR's bottleneck bandwidth, kept for [`LINK_RATE_MEMORY`]: the
    /// largest rate the kernel measured while we were not
    /// application-limited. A measurement our own pacing held down says
    /// only that the link carries at least that much: it confirms the rate
    /// we have rather than lowering it (else each capped burst would lower
    /// the cap for the next), and is never taken as a first measurement.
    fn learn_link_rate(&mut self, bits: f64, paced: bool, at: Instant) {
        let fresh = self
            .link_rate
            .filter(|&(_, seen)| at.saturating_duration_since(seen) < LINK_RATE_MEMORY);
        self.link_rate = match fresh {
            Some((known, _)) if paced || bits >= known => Some((known.max(bits), at)),
            Some(known) => Some(known),
            // A first measurement must be the link's own: taking one that
            // our pacing held down would cap the pacing below it, the next
            // one lower still, and the video would never find the link.
            None if paced => None,
            None => Some((bits, at)),
        };
    }

    /// What happened over the last [`DELIVERED_WINDOW`], once readings
    /// cover that long.
    fn over_window(&mut self, now: &LinkReading) -> Option<Window> {
        let acked = now.bytes_acked?;
        let mark = WindowMark {
            at: now.at,
            acked,
            sent: now.bytes_sent,
            held_back: now.pictures_skipped + now.pictures_late,
        };
        self.window_marks.push_back(mark);
        while self.window_marks.len() > 2
            && self
                .window_marks
                .get(1)
                .is_some_and(|m| now.at.saturating_duration_since(m.at) >= DELIVERED_WINDOW)
        {
            self.window_marks.pop_front();
        }
        let then = *self.window_marks.front()?;
        let span = now.at.saturating_duration_since(then.at);
        let per_second = |bytes: u64| bytes as f64 * 8.0 / span.as_secs_f64();
        (span >= DELIVERED_WINDOW && acked >= then.acked).then(|| Window {
            delivered: per_second(acked - then.acked),
            sent: per_second(mark.sent.saturating_sub(then.sent)),
            held_back: mark.held_back > then.held_back,
        })
    }

    /// Takes one reading and returns the new target.
    pub fn update(&mut self, now: LinkReading) -> u32 {
        let first = *self.first_reading.get_or_insert(now.at);
        if now.at.saturating_duration_since(first) >= STARTUP_LIMIT {
            self.starting = false;
        }
        let Some(before) = self.previous.replace(now) else {
            return self.target();
        };
        let elapsed = now.at.saturating_duration_since(before.at).as_secs_f64();
        if elapsed <= 0.0 {
            return self.target();
        }
        let acked_rate = match (before.bytes_acked, now.bytes_acked) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 * 8.0 / elapsed),
            _ => None,
        };
        let window = self.over_window(&now);
        let delivered_over_window = window.map(|w| w.delivered);
        // An estimate is only as good as it is recent: while we send less
        // than the path takes, the kernel's samples say nothing about it.
        self.bottleneck = self
            .bottleneck
            .filter(|&(_, at)| now.at.saturating_duration_since(at) < BOTTLENECK_MEMORY);
        self.link_rate = self
            .link_rate
            .filter(|&(_, at)| now.at.saturating_duration_since(at) < LINK_RATE_MEMORY);
        if let Some((rate, at)) = self.queue_rate {
            if now.at.saturating_duration_since(at) >= QUEUE_RATE_MEMORY {
                // The climb past the old bound goes slowly near the rate
                // the link last carried: a wider link is found all the
                // same, and the same link is met without a jump in its
                // queue (12 % a second made the voice wait 40 ms more).
                self.queue_rate = None;
                self.congested_rate = Some(rate);
            }
        }
        // The kernel's sample, if it measured the link: not while we sent
        // less than the path takes, nor far under what the link just
        // delivered (the congestion window's restart after a timeout, see
        // `BOTTLENECK_DELIVERED_SHARE`), which says nothing of the link's
        // rate, neither as a bottleneck nor for the pacing's cap.
        let link_sample = now
            .delivery_rate
            .filter(|_| !now.app_limited)
            .map(|rate| rate as f64 * 8.0)
            .filter(|&bits| {
                delivered_over_window.is_none_or(|rate| bits >= BOTTLENECK_DELIVERED_SHARE * rate)
            });
        if let Some(bits) = link_sample {
            let paced = bits >= PACING_LIMITED_SHARE * self.pacing_rate() as f64;
            // A rate our own pacing held down is no bottleneck: capping the
            // target under it would stop the climb on any link wider than
            // the pacing (on a 20 Mbit/s link the video stayed at 1.6).
            if !paced {
                let keep = self.bottleneck.filter(|&(best, _)| best >= bits);
                self.bottleneck = Some(keep.unwrap_or((bits, now.at)));
            }
            self.learn_link_rate(bits, paced, now.at);
        }
        self.acked_rate = acked_rate;
        if now.keyframes_sent > before.keyframes_sent {
            self.keyframe_forgiven = self.last_keyframe.is_none_or(|at| {
                now.at.saturating_duration_since(at) >= KEYFRAME_SPACING_FOR_GRACE
            });
            self.last_keyframe = Some(now.at);
        }
        // A keyframe is many frames' worth of bytes at once: the link
        // queues it and the next pictures wait, whatever the link's rate.
        // For a while only a queue well past the target counts.
        let after_keyframe = self.keyframe_forgiven
            && self
                .last_keyframe
                .is_some_and(|at| now.at.saturating_duration_since(at) < KEYFRAME_GRACE);
        // A frame that waited for the socket past the latency budget is
        // never a keyframe's doing alone: the rate is more than the link
        // carries.
        let late = now.pictures_late > before.pictures_late;
        let queue_of = |reading: &LinkReading| reading.rtt.saturating_sub(reading_min_rtt(reading));
        let queue_delay = queue_of(&now);
        let queue_before = queue_of(&before);
        let growing = self.earlier_queue.is_some_and(|earlier| {
            queue_delay > QUEUE_GROWING_FROM
                && queue_delay > queue_before
                && queue_before > earlier
                && queue_delay - earlier >= QUEUE_GROWTH
        });
        self.earlier_queue = Some(queue_before);
        let pictures = now.pictures_encoded.saturating_sub(before.pictures_encoded)
            + now.pictures_skipped.saturating_sub(before.pictures_skipped);
        let skipped = now.pictures_skipped.saturating_sub(before.pictures_skipped);
        let busy = pictures > 0 && skipped as f64 / pictures as f64 > BUSY_SHARE;
        // The RTT says the bottleneck holds a queue: the link, not our
        // own backlog, is what pushes back.
        // The startup limit only where the smoothed RTT lags far behind
        // the queue (a path of tens of milliseconds or more): on a LAN or
        // a loopback relay, 15 ms of RTT is as likely a busy machine.
        let lagging = reading_min_rtt(&now) >= STARTUP_QUEUE_LIMIT_FROM_RTT;
        let queued = queue_delay > QUEUE_DELAY_TARGET
            || (self.starting && lagging && queue_delay > STARTUP_QUEUE_LIMIT);
        let congested = if late {
            true
        } else if after_keyframe {
            queue_delay > QUEUE_DELAY_TARGET * 3
        } else {
            queued || busy
        };
        let sent_rate = now.bytes_sent.saturating_sub(before.bytes_sent) as f64 * 8.0 / elapsed;
        // Sending less than the target because the content needs less, not
        // because pictures were skipped (for the link or by the encoder).
        let rate_skipped = now.pictures_rate_skipped > before.pictures_rate_skipped;
        let content_limited =
            sent_rate < APP_LIMITED_SHARE * self.target && skipped == 0 && !rate_skipped;
        self.content_limited = content_limited;
        let held = self
            .last_decrease
            .is_some_and(|at| now.at.saturating_duration_since(at) < DECREASE_HOLD);
        // While the bottleneck's queue shows or grows, the link carries all
        // it can: what it delivered over the last second is its rate, where
        // the kernel's samples (application-limited, or read from bunched
        // acknowledgements) may not have said. Not so for our own backlog
        // (skipped or late pictures with no queue on the path: a long round
        // trip's window), whose delivered rate is only what we sent; nor in
        // startup, whose last second was a climb from well under the
        // target, and where a short queue may be a busy machine's RTT (in
        // CI a loopback relay's first second bounded its video at 1 Mbit/s
        // for 20 s).
        // Nor when we sent less than half the target over that second, as
        // a picture that compresses well does (on loopback, a 640x480 test
        // pattern: 130 kbit/s of an 800 kbit/s target): the delayed
        // acknowledgements of so little traffic raise the RTT by 5-20 ms,
        // which looks like a growing queue, and learning that second's
        // rate bounded the video at 110 kbit/s and paced its keyframes
        // into seconds of delay. Such a queue is not ours to ease either:
        // easing on it took the target down 5 % at a time until half of it
        // was what the picture needed.
        let sending_little =
            delivered_over_window.is_some_and(|rate| rate < APP_LIMITED_SHARE * self.target);
        let offered_little =
            window.is_some_and(|w| !w.held_back && w.sent < OFFERED_SHARE * self.target);
        // A queue that only grows, still short, while the second delivered
        // well under the link's measured rate is the RTT's wander, not a
        // full link (see `GROWING_FULL_SHARE`); a standing queue is the
        // link's whatever we sent.
        let growing_full = growing
            && delivered_over_window.is_some_and(|rate| {
                self.link_rate
                    .is_none_or(|(link, _)| rate >= GROWING_FULL_SHARE * link)
            });
        let link_full = !self.starting
            && !sending_little
            && !offered_little
            && reading_min_rtt(&now) >= LEARN_FROM_QUEUE_RTT
            && (queue_delay > QUEUE_DELAY_TARGET || growing_full);
        if let (true, Some(rate)) = (link_full, delivered_over_window) {
            self.learn_link_rate(rate, false, now.at);
            // The largest: a second that was not full all through (the
            // queue only began, or was a keyframe's) reads low, and taking
            // it would lower the bound, the rate, and the next reading.
            self.queue_rate = match self.queue_rate {
                Some((known, at)) if known > rate => Some((known, at)),
                _ => Some((rate, now.at)),
            };
        }
        if congested {
            if !held {
                // To 0.85 of what the path delivered, but never below half
                // the target in one step. With a queue on the path, what
                // it delivered over the last second: the link was full.
                // Otherwise (our own backlog, or less than a second of
                // readings) the acked bytes of this reading or the
                // kernel's own delivery rate, whichever is higher, as one
                // 200 ms window may catch a stall; over a second, a
                // backlog's delivered rate is only what we sent, which
                // in startup is well under the target.
                let kernel = now.delivery_rate.map(|rate| rate as f64 * 8.0);
                let delivered = match (queued, delivered_over_window) {
                    (true, Some(rate)) => rate.max(0.5 * self.target),
                    _ => acked_rate
                        .into_iter()
                        .chain(kernel)
                        .fold(0.5 * self.target, f64::max),
                };
                self.target = 0.85 * delivered.min(self.target);
                self.starting = false;
                self.congested_rate = Some(delivered);
                self.last_decrease = Some(now.at);
                self.state = RateState::Decreased;
            }
        } else if growing && !after_keyframe && !sending_little {
            // Ease off before the queue is long: each reading it keeps
            // growing takes a little more, and the rate it grew at is
            // where the climb goes slowly again.
            self.target *= EASE;
            self.starting = false;
            if let Some(delivered) = acked_rate {
                self.congested_rate = Some(delivered);
            }
            self.state = RateState::Easing;
        } else if !held && content_limited {
            // The encoder needs less than the target (a still picture): a
            // higher target would promise the link what was never tried.
        } else if !held {
            let near = self
                .congested_rate
                .is_some_and(|rate| self.target > 0.9 * rate && self.target < 1.1 * rate);
            let growth = match (self.starting, near) {
                (true, _) => STARTUP_GROWTH,
                (false, true) => 0.03,
                (false, false) => FAR_GROWTH,
            };
            self.target *= 1.0 + growth * elapsed.min(1.0);
            self.state = if near {
                RateState::Converging
            } else {
                RateState::Probing
            };
        }
        if let Some((bottleneck, _)) = self.bottleneck {
            if self.target > 0.9 * bottleneck {
                self.target = 0.9 * bottleneck;
                self.starting = false;
            }
        }
        if let Some((link, _)) = self.queue_rate {
            self.target = self.target.min(TARGET_LINK_SHARE * link);
        }
        self.target = self
            .target
            .clamp(f64::from(MIN_BITRATE), f64::from(self.max));
        self.target()
    }
}

/// The sizes H.264 is sent at, as fractions of the captured size, largest
/// first.
pub const SCALES: [(u32, u32); 4] = [(1, 1), (3, 4), (1, 2), (1, 3)];

/// Below this many bits per pixel and frame, a picture is blurred and
/// blocky: sending fewer, larger pixels looks better (720p30 at 1.1
/// Mbit/s, 360p30 at 280 kbit/s).
const STEP_DOWN_BITS_PER_PIXEL: f64 = 0.04;

/// A size is taken back once the target gives it this many bits per pixel:
/// well above the step down, so the size does not flap.
const STEP_UP_BITS_PER_PIXEL: f64 = 0.07;

/// The least time between two changes of size: each costs a keyframe.
const SIZE_CHANGE_SPACING: Duration = Duration::from_secs(4);

/// Share of the media thread's time spent encoding above which the machine
/// cannot keep up with the source at this size (WebRTC's overuse
/// detector adapts down at 85 %): pictures are then lost before the link
/// sees them, and a higher bitrate only makes each one slower.
const ENCODE_OVERLOAD: f64 = 0.85;

/// A larger size is taken back only if the encoding load, scaled by its
/// pixels, would stay under this (WebRTC adapts up under 42 % at the
/// smaller size; the scaling makes this about the same).
const ENCODE_ROOM: f64 = 0.7;

/// The last lever after bitrate and frame rate: the picture's size. Also
/// the lever when the link is fine but this machine cannot encode the
/// pictures as fast as they come.
#[derive(Debug, Clone, Default)]
pub struct SizeLadder {
    step: usize,
    changed_at: Option<Instant>,
    /// Share of the media thread's time spent encoding, measured at the
    /// current size (none yet after a change).
    encode_load: Option<f64>,
}

impl SizeLadder {
    /// The share of the media thread's time that encoding took over the
    /// last second or so, at the current size.
    pub fn encode_load(&mut self, load: f64) {
        self.encode_load = Some(load);
    }

    /// Whether encoding is more than this machine keeps up with.
    pub fn overloaded(&self) -> bool {
        self.encode_load.is_some_and(|load| load > ENCODE_OVERLOAD)
    }

    /// The fraction of the captured `width` x `height` to send at `fps`
    /// for `target` bits per second, as of `now`. A picture that codes in
    /// well under the target (`content_limited`) needs no smaller size,
    /// whatever bits per pixel the target gives.
    pub fn scale(
        &mut self,
        now: Instant,
        target: u32,
        (width, height): (u32, u32),
        fps: u32,
        content_limited: bool,
        starting: bool,
    ) -> (u32, u32) {
        let bits_per_pixel = |step: usize| {
            let (numerator, denominator) = SCALES[step];
            let ratio = f64::from(numerator) / f64::from(denominator);
            let pixels = f64::from(width) * f64::from(height) * ratio * ratio;
            f64::from(target) / (pixels * f64::from(fps.max(1))).max(1.0)
        };
        let settled = self
            .changed_at
            .is_none_or(|at| now.saturating_duration_since(at) >= SIZE_CHANGE_SPACING);
        // The encoding load at the next size up, from the pixels it adds.
        let load_if_larger = |step: usize| {
            let ratio = |step: usize| {
                let (numerator, denominator) = SCALES[step];
                f64::from(numerator) / f64::from(denominator)
            };
            self.encode_load
                .map(|load| load * (ratio(step - 1) / ratio(step)).powi(2))
        };
        if settled {
            let starved = bits_per_pixel(self.step) < STEP_DOWN_BITS_PER_PIXEL;
            // In startup the target is a guess still climbing: shrinking
            // to it would cost a keyframe now and another to grow back.
            let too_few_bits = !content_limited && !starting && starved;
            let larger_fits_the_link = content_limited
                || bits_per_pixel(self.step.saturating_sub(1)) >= STEP_UP_BITS_PER_PIXEL;
            if self.step + 1 < SCALES.len() && (too_few_bits || self.overloaded()) {
                self.step += 1;
                self.changed_at = Some(now);
                self.encode_load = None;
            } else if self.step > 0
                && larger_fits_the_link
                && load_if_larger(self.step).is_none_or(|load| load < ENCODE_ROOM)
            {
                self.step -= 1;
                self.changed_at = Some(now);
                self.encode_load = None;
            }
        }
        SCALES[self.step]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reading `step` samples after `start` of a call that sends and
    /// has acknowledged `bytes_per_step` each sample, six pictures a
    /// sample, nothing skipped or late, application-limited; tests set
    /// the RTT and what else they vary.
    fn steady_reading(start: Instant, step: u64, bytes_per_step: u64) -> LinkReading {
        LinkReading {
            at: start + SAMPLE_INTERVAL * step as u32,
            rtt: Duration::ZERO,
            min_rtt: None,
            delivery_rate: None,
            app_limited: true,
            notsent_bytes: 0,
            bytes_acked: Some(step * bytes_per_step),
            pictures_skipped: 0,
            pictures_encoded: step * 6,
            bytes_sent: step * bytes_per_step,
            keyframes_sent: 0,
            pictures_rate_skipped: 0,
            pictures_late: 0,
        }
    }

    /// A simulated link of `capacity` bits/s with a 40 ms base RTT, fed
    /// by a sender at the controller's target: the queue grows by what the
    /// target sends above capacity and drains otherwise; a queue over one
    /// frame's worth makes the media thread skip pictures.
    struct Path {
        capacity: f64,
        queue_bits: f64,
        acked: u64,
        encoded: u64,
        skipped: u64,
        sent_bytes: u64,
        /// Share of the target the encoder uses (1: busy content).
        content: f64,
        /// The queue is in a router past the kernel and the sender's
        /// window covers it: it never makes the media thread skip pictures,
        /// and the kernel marks every delivery rate app-limited (so there
        /// is no bottleneck estimate); only the RTT tells.
        queue_past_kernel: bool,
        /// How far above the truth the kernel's delivery rate reads
        /// (acknowledgements that come bunched: 1.2 on the lab's links).
        delivery_gain: f64,
        /// The deepest queue seen so far, seconds.
        deepest_queue: f64,
        /// The RTT the kernel reports follows the queue only halfway each
        /// reading (it is smoothed), as on the lab's 100 ms links.
        smoothed_rtt: bool,
        reported_queue: f64,
    }

    impl Path {
        fn step(&mut self, rate: &mut RateController, at: Instant) -> u32 {
            let dt = SAMPLE_INTERVAL.as_secs_f64();
            let sent = f64::from(rate.target()) * dt * self.content;
            self.sent_bytes += (sent / 8.0) as u64;
            self.queue_bits = (self.queue_bits + sent - self.capacity * dt).max(0.0);
            let delivered = (sent + self.queue_bits).min(self.capacity * dt);
            self.deepest_queue = self.deepest_queue.max(self.queue_bits / self.capacity);
            self.acked += (delivered / 8.0) as u64;
            let frames = 6; // 30 fps x 200 ms
            if !self.queue_past_kernel && self.queue_bits > f64::from(rate.target()) / 30.0 {
                self.skipped += frames / 2;
                self.encoded += frames / 2;
            } else {
                self.encoded += frames;
            }
            let queue = self.queue_bits / self.capacity;
            self.reported_queue = if self.smoothed_rtt {
                (self.reported_queue + queue) / 2.0
            } else {
                queue
            };
            let queue_delay = Duration::from_secs_f64(self.reported_queue);
            rate.update(LinkReading {
                at,
                rtt: Duration::from_millis(40) + queue_delay,
                min_rtt: Some(Duration::from_millis(40)),
                delivery_rate: Some((self.delivery_gain * delivered / dt / 8.0) as u64),
                app_limited: self.queue_past_kernel || self.queue_bits == 0.0,
                notsent_bytes: 0,
                bytes_acked: Some(self.acked),
                pictures_skipped: self.skipped,
                pictures_encoded: self.encoded,
                bytes_sent: self.sent_bytes,
                keyframes_sent: 0,
                pictures_rate_skipped: 0,
                pictures_late: 0,
            })
        }
    }

    fn run(rate: &mut RateController, path: &mut Path, start: Instant, steps: u32) -> Vec<u32> {
        (0..steps)
            .map(|i| path.step(rate, start + SAMPLE_INTERVAL * i))
            .collect()
    }

    fn path(capacity: f64) -> Path {
        Path {
            capacity,
            queue_bits: 0.0,
            acked: 0,
            encoded: 0,
            skipped: 0,
            sent_bytes: 0,
            content: 1.0,
            queue_past_kernel: false,
            delivery_gain: 1.0,
            deepest_queue: 0.0,
            smoothed_rtt: false,
            reported_queue: 0.0,
        }
    }

    /// The start of a call on the lab's 2 Mbit/s link, whose queue sits in
    /// a router (so only the RTT tells) and whose acknowledgements come
    /// bunched (the kernel's delivery rate reads 20 % high): startup's
    /// climb passes the link, and the first cut must go below the link's
    /// rate, not onto it, so the queue drains at once. It used to wait for
    /// a 40 ms queue and cut to 0.85 of the kernel's 2.4 Mbit/s, and the
    /// voice waited 100 ms more for 2.6 s.
    #[test]
    fn startup_overshoot_is_cut_below_the_link_before_the_queue_is_long() {
        let start = Instant::now();
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        let mut link = path(2_000_000.0);
        link.queue_past_kernel = true;
        link.delivery_gain = 1.2;
        link.smoothed_rtt = true;
        let targets = run(&mut rate, &mut link, start, 25); // 5 s
        assert!(!rate.starting(), "{targets:?}");
        let peak = targets
            .iter()
            .position(|&t| t == *targets.iter().max().unwrap());
        let first_cut = peak.and_then(|at| targets.get(at + 1)).copied();
        assert!(
            first_cut.is_some_and(|cut| cut <= 1_800_000),
            "the first cut goes under the link: {targets:?}"
        );
        assert!(
            link.deepest_queue < 0.045,
            "queue {:.0} ms: {targets:?}",
            link.deepest_queue * 1000.0
        );
        assert!(link.queue_bits == 0.0, "drained by 5 s: {targets:?}");
    }

    /// In startup the smoothed RTT lags a queue that grows with a target
    /// climbing 50 % a second: 15 ms is already the link pushing back.
    #[test]
    fn in_startup_a_short_queue_ends_the_climb() {
        let start = Instant::now();
        let reading = |step: u64, queue_ms: u64| LinkReading {
            rtt: Duration::from_millis(100 + queue_ms),
            min_rtt: Some(Duration::from_millis(100)),
            ..steady_reading(start, step, 40_000)
        };
        let mut rate = RateController::new(1_000_000, DEFAULT_MAX_BITRATE);
        for step in 0..6 {
            rate.update(reading(step, 0));
        }
        assert!(rate.starting());
        let before = rate.target();
        let after = rate.update(reading(6, 20));
        assert!(!rate.starting(), "{before} -> {after}");
        assert!(after < before, "{before} -> {after}");
        // On a loopback path (a relay, a LAN) 20 ms of RTT is as likely a
        // busy machine: startup goes on until the usual 40 ms.
        let local = |step: u64, queue_ms: u64| LinkReading {
            rtt: Duration::from_micros(100) + Duration::from_millis(queue_ms),
            min_rtt: Some(Duration::from_micros(100)),
            ..reading(step, 0)
        };
        let mut rate = RateController::new(1_000_000, DEFAULT_MAX_BITRATE);
        for step in 0..6 {
            rate.update(local(step, 0));
        }
        let before = rate.target();
        let after = rate.update(local(6, 20));
        assert!(rate.starting(), "{before} -> {after}");
        assert!(after > before, "{before} -> {after}");
        rate.update(local(7, 45));
        assert!(!rate.starting());
    }

    /// Once the bottleneck's queue has shown, the video keeps a share of
    /// the link free for the voice and for keyframes, rather than climbing
    /// back into the queue every few seconds; a link that widens is found
    /// again once that bound is forgotten.
    #[test]
    fn after_a_queue_the_target_leaves_room_under_the_link_for_a_while() {
        let start = Instant::now();
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        let mut link = path(2_000_000.0);
        link.queue_past_kernel = true;
        link.delivery_gain = 1.2;
        run(&mut rate, &mut link, start, 50); // 10 s
        link.deepest_queue = 0.0;
        let settled = run(&mut rate, &mut link, start + SAMPLE_INTERVAL * 50, 100); // 20 s
                                                                                    // Under 0.85 of the link's 2 Mbit/s (and the 3 % a second it may
                                                                                    // gain on that) most of the time; it climbs back to the link only
                                                                                    // once the bound is forgotten, to see whether the link widened.
        let roomy = settled.iter().filter(|&&t| t <= 1_750_000).count();
        assert!(roomy * 10 >= settled.len() * 6, "{settled:?}");
        let mean = settled.iter().map(|&t| f64::from(t)).sum::<f64>() / settled.len() as f64;
        assert!(mean >= 1_450_000.0, "still most of the link: {mean}");
        assert!(
            link.deepest_queue < 0.025,
            "queue {:.0} ms",
            link.deepest_queue * 1000.0
        );
        link.capacity = 6_000_000.0;
        let wide = run(&mut rate, &mut link, start + SAMPLE_INTERVAL * 150, 200); // 40 s
        assert!(
            *wide.last().unwrap() >= 3_000_000,
            "finds the wider link: {wide:?}"
        );
    }

    /// Our own backlog is not the link: on a long round trip the sender's
    /// window holds pictures back (skipped, no queue on the path), and what
    /// was delivered then is only what we sent. Taking it for the link's
    /// rate would pin the target (and the pacing) under it for good.
    #[test]
    fn our_own_backlog_does_not_teach_the_links_rate() {
        let start = Instant::now();
        let reading = |step: u64, skipped: u64| LinkReading {
            at: start + SAMPLE_INTERVAL * step as u32,
            rtt: Duration::from_millis(501),
            min_rtt: Some(Duration::from_millis(500)),
            delivery_rate: Some(50_000),
            app_limited: true,
            notsent_bytes: 20_000,
            // 400 kbit/s delivered all along.
            bytes_acked: Some(step * 10_000),
            pictures_skipped: skipped,
            pictures_encoded: step * 6,
            bytes_sent: step * 10_000,
            keyframes_sent: 0,
            pictures_rate_skipped: 0,
            pictures_late: 0,
        };
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        // Two seconds of a third of the pictures skipped: cut.
        for step in 0..10 {
            rate.update(reading(step, step * 3));
        }
        let cut = rate.target();
        assert!(cut < 800_000, "{cut}");
        assert_eq!(rate.link_rate(), None);
        // The backlog clears: the target climbs past 0.85 of what was
        // delivered, as no queue on the path bounds it.
        for step in 10..40 {
            rate.update(reading(step, 27));
        }
        assert!(rate.target() > 360_000, "{} after {cut}", rate.target());
    }

    /// A loopback call whose pictures compress to 130 kbit/s of an 800
    /// kbit/s target, with the RTT that delayed acknowledgements give so
    /// little traffic: 5-20 ms on a path of 36 µs, rising for a second at a
    /// time. That second's rate is not the link's.
    #[test]
    fn a_picture_that_needs_little_does_not_teach_the_links_rate() {
        let start = Instant::now();
        let rtts_ms = [
            6.2, 4.8, 12.2, 13.6, 7.7, 6.8, 9.8, 12.5, 14.0, 14.4, 15.4, 17.2,
        ];
        let reading = |step: u64| LinkReading {
            rtt: Duration::from_secs_f64(rtts_ms[step as usize % rtts_ms.len()] / 1000.0),
            min_rtt: Some(Duration::from_micros(36)),
            delivery_rate: Some(1_100_000_000),
            keyframes_sent: 1,
            // 130 kbit/s delivered all along.
            ..steady_reading(start, step, 3_250)
        };
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        for step in 0..150 {
            rate.update(reading(step));
        }
        assert_eq!(rate.link_rate(), None);
        assert!(rate.target() > 400_000, "{}", rate.target());
        assert!(rate.pacing_rate() > 600_000, "{}", rate.pacing_rate());
    }

    /// A queue that shows while we write well under the target, with
    /// nothing held back, is not ours (on a loopback relay starved by a
    /// busy CPU the RTT rose 4 ms while the encoder wrote 1.0 of a 1.6
    /// Mbit/s target). Learning that second's rate bounded the video at
    /// 1.0 Mbit/s on a 2 Mbit/s link for the rest of a call. Here on a
    /// 40 ms path, where queues do teach the link's rate.
    #[test]
    fn a_queue_while_we_offer_less_than_the_target_does_not_teach_the_links_rate() {
        let start = Instant::now();
        let rtts_ms = [47.0, 51.0, 51.8];
        let reading = |step: u64| LinkReading {
            rtt: Duration::from_secs_f64(match step {
                20..=22 => rtts_ms[step as usize - 20] / 1000.0,
                _ => 0.040,
            }),
            min_rtt: Some(Duration::from_millis(40)),
            // 1.0 Mbit/s written and delivered.
            ..steady_reading(start, step, 25_000)
        };
        let mut rate = RateController::new(1_600_000, 1_600_000);
        for step in 0..20 {
            rate.update(reading(step));
        }
        assert!(!rate.starting());
        assert_eq!(rate.target(), 1_600_000);
        let mut targets = Vec::new();
        for step in 20..70 {
            targets.push(rate.update(reading(step)));
        }
        assert!(
            targets.iter().all(|&t| t >= 1_400_000),
            "eased, not bounded: {targets:?}"
        );
        assert_eq!(*targets.last().unwrap(), 1_600_000, "{targets:?}");
    }

    /// On a loopback path a stall (pictures skipped) and the backlog that
    /// leaves after it (the RTT up 7-12 ms while we write what the link
    /// delivers) are no measure of the link: the target is cut, and climbs
    /// back, rather than held for 20 s under one second's delivery (a
    /// 400 ms stall 1 s into a call on a 2 Mbit/s relay held it at 0.91).
    #[test]
    fn on_a_loopback_path_a_stall_does_not_bound_the_target() {
        let start = Instant::now();
        let rtts_ms = [7.0, 11.0, 15.0, 19.0];
        let reading = |step: u64| LinkReading {
            rtt: Duration::from_secs_f64(match step {
                20..=23 => rtts_ms[step as usize - 20] / 1000.0,
                _ => 0.0001,
            }),
            min_rtt: Some(Duration::from_micros(40)),
            // Three pictures skipped in each of two readings.
            pictures_skipped: step.clamp(17, 19) * 3 - 51,
            // 1.6 Mbit/s written and delivered.
            ..steady_reading(start, step, 40_000)
        };
        let mut rate = RateController::new(1_600_000, 1_600_000);
        for step in 0..18 {
            rate.update(reading(step));
        }
        assert!(!rate.starting());
        let mut targets = Vec::new();
        for step in 18..100 {
            targets.push(rate.update(reading(step)));
        }
        assert!(
            targets[..4].iter().any(|&t| t < 1_400_000),
            "the stall cuts: {targets:?}"
        );
        assert!(
            *targets.last().unwrap() >= 1_500_000,
            "climbs back: {targets:?}"
        );
    }

    #[test]
    fn it_settles_below_a_narrow_link_without_oscillating() {
        let start = Instant::now();
        let mut rate = RateController::new(3_000_000, DEFAULT_MAX_BITRATE);
        let mut link = path(2_000_000.0);
        let targets = run(&mut rate, &mut link, start, 150); // 30 s
        let last = &targets[100..];
        let (low, high) = (*last.iter().min().unwrap(), *last.iter().max().unwrap());
        // Probing touches the link's rate (the queue that builds is what
        // says so), never far past it.
        assert!(high <= 2_100_000, "never far above the link: {high}");
        assert!(low >= 1_400_000, "uses most of the link: {low}");
        // No sawtooth wider than a fifth of the rate.
        assert!(
            f64::from(high - low) < 0.2 * f64::from(high),
            "{low}..{high}"
        );
    }

    /// The queue is where the voice datagrams wait behind the video: the
    /// target eases while the queue grows, so the queue never gets near
    /// the 40 ms that used to be the first sign (the lab saw 80-130 ms),
    /// and the video still has most of the link.
    #[test]
    fn a_growing_queue_eases_the_target_before_it_is_long() {
        let start = Instant::now();
        let mut rate = RateController::new(1_000_000, DEFAULT_MAX_BITRATE);
        let mut link = path(2_000_000.0);
        link.queue_past_kernel = true;
        let mut deepest = Duration::ZERO;
        let mut settled = Vec::new();
        for i in 0..300 {
            let target = link.step(&mut rate, start + SAMPLE_INTERVAL * i);
            if i >= 50 {
                deepest = deepest.max(Duration::from_secs_f64(link.queue_bits / link.capacity));
                settled.push(f64::from(target));
            }
        }
        assert!(deepest < Duration::from_millis(25), "queue {deepest:?}");
        let mean = settled.iter().sum::<f64>() / settled.len() as f64;
        assert!(mean >= 1_700_000.0, "uses most of the link: {mean}");
    }

    #[test]
    fn it_drops_fast_on_a_step_down_and_climbs_back_within_seconds() {
        let start = Instant::now();
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        let mut link = path(20_000_000.0);
        // 8 % a second: from 0.8 to 4 Mbit/s in about 21 s.
        let wide = run(&mut rate, &mut link, start, 110);
        assert_eq!(
            *wide.last().unwrap(),
            DEFAULT_MAX_BITRATE,
            "reaches the cap"
        );
        link.capacity = 3_000_000.0;
        let narrow = run(&mut rate, &mut link, start + SAMPLE_INTERVAL * 110, 50);
        let within_2s = narrow[..10].iter().position(|&t| t <= 3_000_000);
        assert!(within_2s.is_some(), "below 3 Mbit/s within 2 s: {narrow:?}");
        // Then it probes around the link, on average below it.
        let settled = &narrow[20..];
        let mean = settled.iter().map(|&t| f64::from(t)).sum::<f64>() / settled.len() as f64;
        assert!(mean <= 3_000_000.0, "{narrow:?}");
        assert!(settled.iter().all(|&t| t <= 3_300_000), "{narrow:?}");
        link.capacity = 20_000_000.0;
        let back = run(&mut rate, &mut link, start + SAMPLE_INTERVAL * 160, 100);
        let recovered = back.iter().position(|&t| t >= 3_900_000);
        assert!(
            recovered.is_some_and(|i| i <= 75),
            "back near the cap within 15 s: {back:?}"
        );
    }

    #[test]
    fn startup_reaches_a_wide_links_rate_within_seconds_then_ends() {
        let start = Instant::now();
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        let mut link = path(20_000_000.0);
        // Readings at 0, 0.2 .. 2.8 s: 1.5 ^ 2.8 from 0.8 Mbit/s.
        let targets = run(&mut rate, &mut link, start, 15);
        assert!(*targets.last().unwrap() >= 2_400_000, "{targets:?}");
        assert!(rate.starting(), "nothing pushed back yet");
        run(&mut rate, &mut link, start + SAMPLE_INTERVAL * 15, 2);
        assert!(!rate.starting(), "startup ends at STARTUP_LIMIT");
        // After it, the ordinary climb: 12 % a second, not 50.
        let before = rate.target();
        run(&mut rate, &mut link, start + SAMPLE_INTERVAL * 17, 5);
        let grown = f64::from(rate.target()) / f64::from(before);
        assert!((1.08..1.16).contains(&grown), "{grown}");
    }

    #[test]
    fn startup_ends_when_the_link_first_pushes_back() {
        let start = Instant::now();
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        let mut link = path(1_000_000.0);
        let targets = run(&mut rate, &mut link, start, 10); // 2 s
        assert!(!rate.starting(), "{targets:?}");
        // The overshoot of a fast climb is cut back under the link.
        let later = run(&mut rate, &mut link, start + SAMPLE_INTERVAL * 10, 40);
        assert!(later[10..].iter().all(|&t| t <= 1_100_000), "{later:?}");
        // And in startup the ladder keeps the full size, after it shrinks.
        let mut ladder = SizeLadder::default();
        assert_eq!(
            ladder.scale(start, 500_000, (1280, 720), 30, false, true),
            (1, 1)
        );
        assert_eq!(
            ladder.scale(start, 500_000, (1280, 720), 30, false, false),
            (3, 4)
        );
    }

    #[test]
    fn a_still_picture_does_not_inflate_the_target() {
        let start = Instant::now();
        let mut rate = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        let mut link = path(20_000_000.0);
        link.content = 0.2;
        let targets = run(&mut rate, &mut link, start, 100);
        assert!(targets.iter().all(|&t| t <= 800_000), "{targets:?}");
    }

    #[test]
    fn the_size_steps_down_on_a_thin_link_and_back_up_without_flapping() {
        let start = Instant::now();
        let mut ladder = SizeLadder::default();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(
            ladder.scale(at(0), 2_000_000, (1280, 720), 30, false, false),
            (1, 1)
        );
        // 500 kbit/s is 0.018 bits per pixel at 720p30: 3/4, then (after
        // the spacing) 1/2, at most one step per 4 s.
        assert_eq!(
            ladder.scale(at(1), 500_000, (1280, 720), 30, false, false),
            (3, 4)
        );
        assert_eq!(
            ladder.scale(at(2), 500_000, (1280, 720), 30, false, false),
            (3, 4)
        );
        assert_eq!(
            ladder.scale(at(5), 500_000, (1280, 720), 30, false, false),
            (1, 2)
        );
        assert_eq!(
            ladder.scale(at(9), 500_000, (1280, 720), 30, false, false),
            (1, 2)
        );
        // 1 Mbit/s would give 3/4 only 0.036: stays at 1/2.
        assert_eq!(
            ladder.scale(at(20), 1_000_000, (1280, 720), 30, false, false),
            (1, 2)
        );
        assert_eq!(
            ladder.scale(at(30), 2_000_000, (1280, 720), 30, false, false),
            (3, 4)
        );
        assert_eq!(
            ladder.scale(at(40), 2_000_000, (1280, 720), 30, false, false),
            (1, 1)
        );
        // A cheap picture (the encoder uses well under its target) is not
        // made smaller, and one made smaller comes back.
        assert_eq!(
            ladder.scale(at(50), 300_000, (1280, 720), 30, true, false),
            (1, 1)
        );
        assert_eq!(
            ladder.scale(at(60), 300_000, (1280, 720), 30, false, false),
            (3, 4)
        );
        assert_eq!(
            ladder.scale(at(70), 300_000, (1280, 720), 30, true, false),
            (1, 1)
        );
    }

    #[test]
    fn a_machine_that_cannot_keep_up_sends_a_smaller_picture() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut ladder = SizeLadder::default();
        // Bits enough for 720p30, but encoding takes 95 % of the time.
        ladder.encode_load(0.95);
        assert!(ladder.overloaded());
        assert_eq!(
            ladder.scale(at(0), 4_000_000, (1280, 720), 30, false, false),
            (3, 4)
        );
        // Measured afresh at the new size: 60 % would be 107 % at full size.
        assert!(!ladder.overloaded());
        ladder.encode_load(0.6);
        assert_eq!(
            ladder.scale(at(10), 4_000_000, (1280, 720), 30, false, false),
            (3, 4)
        );
        // Even a still picture (content-limited) does not grow past it.
        assert_eq!(
            ladder.scale(at(20), 4_000_000, (1280, 720), 30, true, false),
            (3, 4)
        );
        // Once the machine has room (30 %: 53 % at full size), it grows.
        ladder.encode_load(0.3);
        assert_eq!(
            ladder.scale(at(30), 4_000_000, (1280, 720), 30, false, false),
            (1, 1)
        );
    }

    #[test]
    fn a_keyframe_or_a_stalled_reading_does_not_collapse_the_target() {
        let start = Instant::now();
        let reading = |ms: u64, acked: u64, skipped: u64, keyframes: u64| LinkReading {
            at: start + Duration::from_millis(ms),
            rtt: Duration::from_millis(45),
            min_rtt: Some(Duration::from_millis(40)),
            delivery_rate: None,
            app_limited: false,
            notsent_bytes: 0,
            bytes_acked: Some(acked),
            pictures_skipped: skipped,
            pictures_encoded: 100,
            bytes_sent: acked,
            keyframes_sent: keyframes,
            pictures_rate_skipped: 0,
            pictures_late: 0,
        };
        let mut rate = RateController::new(2_000_000, DEFAULT_MAX_BITRATE);
        rate.update(reading(0, 0, 0, 0));
        // A keyframe went out and the next pictures waited for it: no cut.
        assert!(rate.update(reading(200, 50_000, 4, 1)) >= 2_000_000);
        // Out of the keyframe's shadow, a reading in which almost nothing
        // was acked cuts by at most half (times GCC's 0.85).
        let mut stalled = RateController::new(2_000_000, DEFAULT_MAX_BITRATE);
        stalled.update(reading(0, 0, 0, 0));
        let cut = stalled.update(reading(200, 100, 6, 0));
        assert_eq!(cut, 850_000);
    }

    /// The lab's trace (2 Mbit/s, 100 ms, 1 % loss): 1.6 Mbit/s going
    /// out and acknowledged, every kernel sample application-limited, then
    /// a retransmission timeout. The kernel restarts from one packet a
    /// round trip and reports 14 KB/s, not application-limited. That is
    /// the congestion window's rate, not the link's: the target held at
    /// 0.10 Mbit/s.
    #[test]
    fn a_retransmission_timeouts_restart_is_not_the_links_rate() {
        let start = Instant::now();
        let calm = |step: u64| LinkReading {
            rtt: Duration::from_millis(105),
            min_rtt: Some(Duration::from_millis(100)),
            delivery_rate: Some(286_290),
            ..steady_reading(start, step, 40_000)
        };
        // Held near the lab's target by the cap.
        let mut rate = RateController::new(1_600_000, 1_700_000);
        for step in 0..40 {
            rate.update(calm(step));
        }
        let before = rate.target();
        let pacing_before = rate.pacing_rate();
        let restart = LinkReading {
            delivery_rate: Some(14_287),
            app_limited: false,
            notsent_bytes: 22_635,
            bytes_acked: Some(39 * 40_000 + 6_500),
            ..calm(40)
        };
        let after = rate.update(restart);
        assert!(
            after >= before,
            "the target went from {before} to {after} on the restart's rate"
        );
        assert!(rate.pacing_rate() >= pacing_before, "the pacing was cut");
        assert_eq!(rate.link_rate(), None, "the restart's rate was learnt");
    }

    /// Another lab trace: the kernel measured the link at 1.77 Mbit/s, a
    /// stall cut the target to about 0.7, and while 0.86 Mbit/s went out
    /// the smoothed RTT wandered 106, 108.5, 110.6 ms over a 100 ms path.
    /// A queue that short, on a link delivering half its measured rate, is
    /// not a full link: it eases the target, and the climb goes on. It
    /// used to bound the video at 0.85 of 0.86 Mbit/s for 20 s.
    #[test]
    fn a_short_queue_far_under_the_links_measured_rate_does_not_bound_the_target() {
        let start = Instant::now();
        let sent_per_step = 21_500; // 0.86 Mbit/s
        let reading = |step: u64, rtt_ms: f64| LinkReading {
            rtt: Duration::from_secs_f64(rtt_ms / 1000.0),
            min_rtt: Some(Duration::from_millis(100)),
            ..steady_reading(start, step, sent_per_step)
        };
        let mut rate = RateController::new(2_000_000, DEFAULT_MAX_BITRATE);
        rate.update(reading(0, 105.0));
        // The kernel measures the link while the burst waits for it.
        rate.update(LinkReading {
            delivery_rate: Some(221_000),
            app_limited: false,
            ..reading(1, 105.0)
        });
        assert_eq!(rate.link_rate(), Some(1_768_000));
        // A stalled reading: almost nothing acknowledged, pictures skipped.
        rate.update(LinkReading {
            bytes_acked: Some(sent_per_step + 100),
            pictures_skipped: 6,
            ..reading(2, 105.0)
        });
        let cut = rate.target();
        assert!(cut < 900_000, "the stall cut the target: {cut}");
        let mut step = 3;
        for _ in 0..10 {
            rate.update(reading(step, 105.0));
            step += 1;
        }
        for rtt in [106.0, 108.5, 110.6] {
            rate.update(reading(step, rtt));
            step += 1;
        }
        for _ in 0..25 {
            rate.update(reading(step, 105.0));
            step += 1;
        }
        let after = rate.target();
        assert!(
            after > 800_000,
            "held at {after} by a bound learnt from the RTT's wander (the cut: {cut})"
        );
    }

    /// The spiral seen once in CI: frames too late for the socket are
    /// dropped, the peer asks for a keyframe, the keyframe queues, more
    /// frames are late. Neither the keyframes' grace nor a quiet RTT (the
    /// queue sits past the kernel, in a relay) may let the target climb.
    #[test]
    fn late_frames_and_keyframes_that_keep_coming_bring_the_target_down() {
        let start = Instant::now();
        let reading = |step: u64, late: u64| LinkReading {
            at: start + SAMPLE_INTERVAL * step as u32,
            rtt: Duration::from_millis(41),
            min_rtt: Some(Duration::from_millis(40)),
            delivery_rate: None,
            app_limited: false,
            notsent_bytes: 0,
            bytes_acked: Some(step * 50_000),
            pictures_skipped: 0,
            pictures_encoded: step * 6,
            // A full 2 Mbit/s link: 50 kB each 200 ms.
            bytes_sent: step * 50_000,
            // A keyframe every 400 ms.
            keyframes_sent: step / 2,
            pictures_rate_skipped: 0,
            pictures_late: late,
        };
        let mut rate = RateController::new(3_000_000, DEFAULT_MAX_BITRATE);
        rate.update(reading(0, 0));
        let targets: Vec<u32> = (1..=25)
            .map(|step| rate.update(reading(step, step)))
            .collect();
        assert!(
            targets.iter().all(|&t| t <= 3_000_000),
            "never climbs: {targets:?}"
        );
        assert!(
            rate.target() <= 2_000_000,
            "comes under the link: {targets:?}"
        );
        // Without late frames, the same keyframes every 400 ms and the
        // pictures they hold up (a third skipped) still count once the
        // first keyframe's grace is spent.
        let mut rate = RateController::new(3_000_000, DEFAULT_MAX_BITRATE);
        let busy = |step: u64| LinkReading {
            pictures_skipped: step * 3,
            pictures_encoded: step * 3,
            ..reading(step, 0)
        };
        rate.update(busy(0));
        let targets: Vec<u32> = (1..=25).map(|step| rate.update(busy(step))).collect();
        assert!(
            rate.target() <= 2_000_000,
            "comes under the link: {targets:?}"
        );
    }

    #[test]
    fn the_pacing_stays_under_the_links_measured_rate() {
        let start = Instant::now();
        // Not application-limited: the kernel had more to send than it took.
        let reading = |ms: u64, delivered_bits: u64| LinkReading {
            at: start + Duration::from_millis(ms),
            rtt: Duration::from_millis(101),
            min_rtt: Some(Duration::from_millis(100)),
            delivery_rate: Some(delivered_bits / 8),
            app_limited: false,
            notsent_bytes: 30_000,
            bytes_acked: Some(ms * 200),
            pictures_skipped: 0,
            pictures_encoded: ms / 33,
            bytes_sent: ms * 200,
            keyframes_sent: 0,
            pictures_rate_skipped: 0,
            pictures_late: 0,
        };
        let mut rate = RateController::new(1_500_000, DEFAULT_MAX_BITRATE);
        assert_eq!(rate.pacing_rate(), 2_250_000, "1.5 times the target");
        rate.update(reading(0, 1_750_000));
        // 1.75 Mbit/s while the pacing allowed 2.25: that is the link.
        rate.update(reading(200, 1_750_000));
        let target = f64::from(rate.target());
        let capped = rate.pacing_rate() as f64;
        assert!(
            capped <= (0.85 * 1_750_000.0f64).max(1.1 * target) + 1.0,
            "{capped} for a {target} target"
        );
        // Cut well under the link (frames came too late): the pacing stays
        // under 0.85 of the link's rate, not at 1.5 times the new target,
        // so a backlog leaves no faster than the link takes it beside the
        // voice.
        let mut cut = rate.clone();
        cut.update(LinkReading {
            pictures_late: 1,
            ..reading(400, 1_750_000)
        });
        let target = f64::from(cut.target());
        assert!(1.5 * target > 0.85 * 1_750_000.0, "{target}");
        assert!(cut.pacing_rate() as f64 <= (0.85 * 1_750_000.0f64).max(1.1 * target) + 1.0);
        // A burst the cap held down does not lower it for the next.
        rate.update(reading(400, (0.85 * 1_750_000.0) as u64));
        rate.update(reading(600, (0.85 * 1_750_000.0) as u64));
        assert!(rate.pacing_rate() as f64 >= capped - 1.0);
        // Nor is one the first measurement: a fresh link paced at 2.25
        // Mbit/s delivering 2.2 says only that it carries at least that.
        let mut fresh = RateController::new(1_500_000, DEFAULT_MAX_BITRATE);
        fresh.update(reading(0, 2_200_000));
        fresh.update(reading(200, 2_200_000));
        assert!(fresh.pacing_rate() as f64 >= 1.5 * f64::from(fresh.target()) - 1.0);
    }

    #[test]
    fn the_cap_and_the_floor_hold() {
        let start = Instant::now();
        let mut capped = RateController::new(800_000, 500_000);
        assert_eq!(capped.target(), 500_000);
        let mut link = path(50_000_000.0);
        assert!(run(&mut capped, &mut link, start, 50)
            .iter()
            .all(|&t| t <= 500_000));
        let mut starved = RateController::new(800_000, DEFAULT_MAX_BITRATE);
        let mut thin = path(50_000.0);
        assert!(run(&mut starved, &mut thin, start, 50)
            .iter()
            .all(|&t| t >= MIN_BITRATE));
        assert_eq!(starved.target(), MIN_BITRATE);
    }
}
