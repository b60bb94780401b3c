//! The frame clock of paced sources: one frame per period on a fixed grid.
//!
//! Every source that is not a camera (the test pattern, Y4M files, the
//! bench's pre-generated frames) runs on this clock, so they all behave like
//! a camera when the consumer is slow: frames that were due while nobody
//! asked are skipped, never delivered later in a burst that would add delay.

use std::thread;
use std::time::{Duration, Instant};

/// Sleeps until each frame is due on a fixed grid of `period`s.
#[derive(Debug)]
pub struct Pacer {
    period: Duration,
    next_due: Option<Instant>,
}

impl Pacer {
    /// A pacer whose first frame is due at once.
    pub fn new(period: Duration) -> Self {
        Pacer {
            period,
            next_due: None,
        }
    }

    /// A pacer whose first frame is due at `first_due`: in the past, it
    /// behaves as if the caller had been away since then.
    pub fn starting_at(period: Duration, first_due: Instant) -> Self {
        Pacer {
            period,
            next_due: Some(first_due),
        }
    }

    /// The time between two frames.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Waits for the next slot (the first is immediate) and returns how many
    /// slots were missed because the caller came late; those are skipped,
    /// never made up in a burst.
    pub fn wait(&mut self) -> u64 {
        let now = Instant::now();
        let due = *self.next_due.get_or_insert(now);
        if now < due {
            thread::sleep(due - now);
            self.next_due = Some(due + self.period);
            return 0;
        }
        let missed = ((now - due).as_nanos() / self.period.as_nanos().max(1)) as u64;
        let next = (missed + 1).saturating_mul(self.period.as_nanos() as u64);
        self.next_due = Some(due + Duration::from_nanos(next));
        missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_skips_instead_of_bursting() {
        let mut pacer = Pacer::new(Duration::from_millis(1));
        assert_eq!(pacer.wait(), 0);
        // Pretend the caller was away for a long time.
        pacer.next_due = Some(Instant::now() - Duration::from_millis(50));
        let before = Instant::now();
        let missed = pacer.wait();
        assert!(missed >= 49, "{missed}");
        // The next slot is in the future again, not in the past (measured
        // from before the wait, so a pause of this thread cannot fail it).
        assert!(pacer.next_due.unwrap() > before);
    }

    #[test]
    fn a_pacer_started_in_the_past_reports_the_missed_slots() {
        let mut pacer = Pacer::starting_at(
            Duration::from_millis(2),
            Instant::now() - Duration::from_millis(20),
        );
        assert!(pacer.wait() >= 10);
        assert_eq!(pacer.period(), Duration::from_millis(2));
    }
}
