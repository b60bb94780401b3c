//! How far the peer's clock is from ours, from pings and pongs.
//!
//! A `video` frame's `time_us` is the capture time on the sender's clock, and
//! the receiver measures latency against its own. On one machine that is one
//! clock and exact; across two machines it would mix two clocks, which can be
//! seconds apart. Since protocol version 3 a `pong` carries the time its
//! sender wrote it. A ping sent at our `t0` and answered at our `t3` with the
//! peer's time `p` bounds the offset: the pong was written after the ping left
//! and before it came back, so `p - t3 <= offset <= p - t0`, an interval as
//! wide as the round trip. Its middle is the estimate (as in NTP), exact when
//! the two directions took equally long.
//!
//! Queues skew that: the pong may wait behind video the ping did not. So, as
//! NTP's clock filter does, the sample with the smallest round trip over the
//! last [`WINDOW`] wins: the narrowest interval, with the least queue in it.
//!
//! Latency is corrected only when the interval excludes zero: two clocks that
//! NTP keeps within a few milliseconds are usually closer than any estimate
//! from a round trip, and on one machine they are the same clock. A peer whose
//! clock is provably off (the interval does not contain zero) gets the
//! estimate. I/O-free: the caller passes the times in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a sample counts. Long enough to hold a quiet moment of a busy
/// link (pings come once a second), short enough to follow clock drift (100
/// ppm is 6 ms a minute).
pub const WINDOW: Duration = Duration::from_secs(30);
/// Samples kept at most, whatever the ping rate.
const MAX_SAMPLES: usize = 64;

/// What a pong says about the peer's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Peer's clock minus ours, in µs (the middle of the interval).
    pub offset_us: i64,
    /// Half the interval: the true offset is within `offset_us ± error_us`.
    pub error_us: u64,
}

impl Estimate {
    /// What to add to `our_now - peer_time_us` to get a latency on one clock:
    /// zero while the clocks agree within the error, else the offset.
    pub fn correction_us(&self) -> i64 {
        if self.clocks_agree() {
            0
        } else {
            self.offset_us
        }
    }

    /// Whether zero lies within the interval: the two clocks may be the same.
    pub fn clocks_agree(&self) -> bool {
        self.offset_us.unsigned_abs() <= self.error_us
    }
}

/// The recent samples, and the best of them.
#[derive(Debug, Default)]
pub struct ClockOffset {
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    rtt: Duration,
    estimate: Estimate,
}

impl ClockOffset {
    /// Adds a pong that came back at `at` (monotonic) and `received_us` (our
    /// wall clock, the clock of our `time_us`) after `rtt`, written at
    /// `peer_time_us` on the peer's clock.
    pub fn add(&mut self, at: Instant, received_us: u64, rtt: Duration, peer_time_us: u64) {
        let rtt_us = i128::try_from(rtt.as_micros()).unwrap_or(i128::MAX);
        // The middle of [p - t3, p - t0] is p - (t3 - rtt/2); i128 so that no
        // u64 from the peer can overflow.
        let middle = i128::from(peer_time_us) - (i128::from(received_us) - rtt_us / 2);
        let estimate = Estimate {
            offset_us: middle.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            error_us: u64::try_from(rtt_us.div_euclid(2) + rtt_us.rem_euclid(2))
                .unwrap_or(u64::MAX),
        };
        self.samples.push_back(Sample { at, rtt, estimate });
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        while let Some(first) = self.samples.front() {
            if at.saturating_duration_since(first.at) > WINDOW {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// The estimate from the narrowest recent interval, if any pong told us.
    pub fn estimate(&self) -> Option<Estimate> {
        self.samples
            .iter()
            .min_by_key(|s| s.rtt)
            .map(|s| s.estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    /// A pong from a peer whose clock is `offset_ms` ahead, over a path that
    /// takes `out_ms` there and `back_ms` back.
    fn sample(
        c: &mut ClockOffset,
        at: Instant,
        now_ms: u64,
        offset_ms: i64,
        out_ms: u64,
        back_ms: u64,
    ) {
        let sent = now_ms;
        let peer_time = (sent + out_ms) as i64 + offset_ms;
        let received = sent + out_ms + back_ms;
        c.add(
            at,
            received * MS,
            Duration::from_millis(out_ms + back_ms),
            peer_time as u64 * MS,
        );
    }

    #[test]
    fn a_symmetric_path_gives_the_offset_exactly() {
        let mut c = ClockOffset::default();
        sample(&mut c, Instant::now(), 1_000_000, -3_000, 20, 20);
        let e = c.estimate().unwrap();
        assert_eq!(e.offset_us, -3_000_000);
        assert_eq!(e.error_us, 20_000);
        assert!(!e.clocks_agree());
        assert_eq!(e.correction_us(), -3_000_000);
    }

    #[test]
    fn the_true_offset_is_always_within_the_error() {
        let mut c = ClockOffset::default();
        // All the delay on the way back: the worst case.
        sample(&mut c, Instant::now(), 1_000_000, 500, 0, 80);
        let e = c.estimate().unwrap();
        assert!((e.offset_us - 500_000).unsigned_abs() <= e.error_us);
    }

    #[test]
    fn the_narrowest_recent_round_trip_wins() {
        let mut c = ClockOffset::default();
        let t = Instant::now();
        // A pong queued 300 ms behind video, then a quiet one.
        sample(&mut c, t, 1_000_000, 2_000, 10, 310);
        sample(&mut c, t + Duration::from_secs(1), 1_001_000, 2_000, 10, 12);
        let e = c.estimate().unwrap();
        assert_eq!(e.error_us, 11_000);
        assert!((e.offset_us - 2_000_000).abs() <= 1_000, "{e:?}");
        // Thirty seconds on, only newer samples count, however wide.
        sample(
            &mut c,
            t + WINDOW + Duration::from_secs(2),
            1_032_000,
            2_500,
            50,
            50,
        );
        assert_eq!(c.estimate().unwrap().offset_us, 2_500_000);
    }

    #[test]
    fn clocks_that_may_be_the_same_are_not_corrected() {
        let mut c = ClockOffset::default();
        // One machine, a 40 ms path, and a pong that queued 30 ms.
        sample(&mut c, Instant::now(), 5_000_000, 0, 20, 50);
        let e = c.estimate().unwrap();
        assert_ne!(e.offset_us, 0);
        assert!(e.clocks_agree());
        assert_eq!(e.correction_us(), 0);
    }

    #[test]
    fn no_pong_no_estimate_and_a_hostile_time_does_not_overflow() {
        let mut c = ClockOffset::default();
        assert_eq!(c.estimate(), None);
        c.add(Instant::now(), 0, Duration::MAX, u64::MAX);
        c.add(Instant::now(), u64::MAX, Duration::ZERO, 0);
        assert!(c.estimate().is_some());
        for _ in 0..1000 {
            c.add(Instant::now(), 1, Duration::from_millis(1), 1);
        }
        assert!(c.samples.len() <= MAX_SAMPLES);
    }
}
