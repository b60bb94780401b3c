//! What the process costs: CPU time and memory, read from Linux's `/proc`
//! (no libc: the crate forbids unsafe code). On other systems every reading
//! is `None` and the report shows "-".

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Kernel clock ticks per second for `/proc/self/stat` times: 100 on every
/// Linux build we run on (`getconf CLK_TCK`); reading it would need libc.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// How often the memory sampler reads the resident set during a run.
const RSS_SAMPLE_PERIOD: Duration = Duration::from_millis(250);

/// User plus system CPU time of the whole process (all threads, both peers).
pub fn cpu_time() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_time(&stat)
}

/// utime and stime are fields 14 and 15; the command name (field 2) is in
/// parentheses and may contain spaces, so fields are counted after the last ')'.
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / CLOCK_TICKS_PER_SECOND,
    ))
}

/// A `/proc/self/status` size field in KiB, e.g. "VmRSS" or "VmHWM" (peak).
pub fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The CPU's model name from `/proc/cpuinfo`, for the report's header.
pub fn cpu_model() -> Option<String> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// Resets the peak resident set (VmHWM) to the current one, so the next
/// reading is the peak of what follows. False where the kernel refuses.
pub fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Samples the resident set in the background during a run, to show
/// whether memory grows with the number of frames.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    thread: Option<JoinHandle<()>>,
}

/// The resident set early in a run and at its end, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssTrend {
    /// The first sample at least one second in (or the first, in a short run).
    pub early_kib: u64,
    pub last_kib: u64,
}

impl RssSampler {
    pub fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::Builder::new()
                .name("vchat-bench-rss".into())
                .spawn(move || {
                    let started = Instant::now();
                    while !stop.load(Ordering::Acquire) {
                        if let Some(kib) = status_kib("VmRSS") {
                            samples
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((started.elapsed(), kib));
                        }
                        std::thread::sleep(RSS_SAMPLE_PERIOD);
                    }
                })
                .ok()
        };
        RssSampler {
            stop,
            samples,
            thread,
        }
    }

    pub fn finish(mut self) -> Option<RssTrend> {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        trend(&samples)
    }
}

fn trend(samples: &[(Duration, u64)]) -> Option<RssTrend> {
    let early = samples
        .iter()
        .find(|(at, _)| *at >= Duration::from_secs(1))
        .or(samples.first())?;
    let last = samples.last()?;
    Some(RssTrend {
        early_kib: early.1,
        last_kib: last.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "42 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_cpu_time("garbage"), None);
    }

    #[test]
    fn status_fields_are_kib() {
        let status = "Name:\tvchat\nVmHWM:\t  123456 kB\nVmRSS:\t   99 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(123_456));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(99));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn trend_starts_one_second_in() {
        let s = |ms, kib| (Duration::from_millis(ms), kib);
        let samples = [s(0, 10), s(500, 20), s(1000, 30), s(3000, 31)];
        assert_eq!(
            trend(&samples),
            Some(RssTrend {
                early_kib: 30,
                last_kib: 31
            })
        );
        assert_eq!(trend(&[]), None);
    }
}
