//! The bench's results and their two forms: a table for people, one JSON
//! object for scripts (`--json`). Pure formatting, no I/O, so it is tested
//! with made-up numbers.

use std::time::Duration;

use serde_json::{json, Value};

use super::bare::BareRun;
use super::{CallRun, Limit, COMPARISON_ROUNDS, LATENCY_FPS, ROUND_SECONDS};
use crate::media::{Quality, Size};
use crate::protocol::PixelFormat;

/// Everything measured for one size and codec.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub size: Size,
    pub codec: PixelFormat,
    /// Unpaced, every frame sent.
    pub throughput: CallRun,
    /// Paced at [`LATENCY_FPS`], newest frame only (the call's behaviour).
    pub latency: CallRun,
    /// vchat against the same bytes over bare TLS (raw codecs only).
    pub comparison: Option<Comparison>,
}

/// vchat and the bare stream measured in alternating short rounds, so both
/// see the same machine: on a shared VM the rate a stream gets drifts by
/// tens of percent between one second and the next, and a single vchat
/// run against a single bare run a few seconds later compares the noise.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub rounds: Vec<Round>,
}

/// One round: an unpaced vchat call, then (or before it) the bare stream
/// with the same number of frames.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub vchat: Rates,
    pub bare: BareRun,
}

impl Round {
    pub fn ratio(&self) -> Option<f64> {
        let bare = self.bare.mb_per_s();
        (bare > 0.0).then(|| self.vchat.mb_per_s / bare)
    }
}

impl Comparison {
    /// The median of the rounds' vchat / bare ratios.
    pub fn ratio(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(Round::ratio).collect())
    }

    /// The bare stream's median rate: (MB/s, frames/s).
    pub fn bare_rates(&self) -> Option<(f64, f64)> {
        let mb = median(self.rounds.iter().map(|r| r.bare.mb_per_s()).collect())?;
        let fps = median(self.rounds.iter().map(|r| r.bare.fps()).collect())?;
        Some((mb, fps))
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    pub cpu_model: Option<String>,
    pub cores: usize,
    /// Each throughput run's limit.
    pub limit: Limit,
    /// Each latency run's limit (longer by default, for a real p99).
    pub latency_limit: Limit,
    pub quality: Quality,
    pub cases: Vec<CaseResult>,
    pub rss_at_start_kib: Option<u64>,
    pub rss_at_end_kib: Option<u64>,
    pub elapsed: Duration,
}

/// Throughput figures derived from a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub seconds: f64,
    /// Frames decoded by the receiver per second.
    pub fps: f64,
    /// Payload megabytes (10^6 bytes) received per second.
    pub mb_per_s: f64,
    pub cpu_ms_per_frame: Option<f64>,
}

impl CaseResult {
    pub fn rates(&self) -> Rates {
        rates(&self.throughput)
    }

    /// vchat's payload rate over the bare stream's (raw codecs only): the
    /// median over the paired rounds.
    pub fn ratio(&self) -> Option<f64> {
        self.comparison.as_ref()?.ratio()
    }
}

/// Frames and bytes the receiver decoded over the time video flowed (the
/// first frame's capture to the last frame's decoding, as the bare stream is
/// timed from its first write to its last read); the whole call if unknown.
pub fn rates(run: &CallRun) -> Rates {
    let totals = &run.receiver.totals;
    let span = run.receiver.video_span.unwrap_or(run.receiver.duration);
    let seconds = span.as_secs_f64().max(1e-9);
    let decoded = totals.frames_shown;
    Rates {
        seconds,
        fps: decoded as f64 / seconds,
        mb_per_s: totals.bytes_received as f64 / seconds / 1e6,
        cpu_ms_per_frame: per_frame(run.cpu, decoded),
    }
}

fn per_frame(cpu: Option<Duration>, frames: u64) -> Option<f64> {
    cpu.filter(|_| frames > 0)
        .map(|cpu| cpu.as_secs_f64() * 1e3 / frames as f64)
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| round(k as f64 / 1024.0, 1))
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| round(d.as_secs_f64() * 1e3, 2))
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// "raw" for RGB24, as on the command line; the wire name otherwise.
pub fn codec_name(codec: PixelFormat) -> &'static str {
    match codec {
        PixelFormat::Rgb24 => "raw",
        other => other.name(),
    }
}

impl Report {
    /// The run as one JSON object.
    pub fn to_json(&self) -> String {
        let cases: Vec<Value> = self.cases.iter().map(case_json).collect();
        let peak = self
            .cases
            .iter()
            .filter_map(|c| c.throughput.peak_kib)
            .max();
        json!({
            "machine": { "cpu": self.cpu_model, "cores": self.cores },
            "options": {
                "frames": self.limit.frames,
                "duration_s": self.limit.duration.map(|d| d.as_secs_f64()),
                "latency_frames": self.latency_limit.frames,
                "latency_duration_s": self.latency_limit.duration.map(|d| d.as_secs_f64()),
                "latency_fps": LATENCY_FPS,
                "comparison_rounds": COMPARISON_ROUNDS,
                "jpeg_quality": self.quality.get(),
            },
            "cases": cases,
            "peak_rss_mb": mib(peak),
            "rss_at_start_mb": mib(self.rss_at_start_kib),
            "rss_at_end_mb": mib(self.rss_at_end_kib),
            "elapsed_s": round(self.elapsed.as_secs_f64(), 1),
        })
        .to_string()
    }

    /// The run as a table with a header and notes.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "vchat bench: {} ({} cores), loopback mutual TLS 1.3, one-way video; throughput runs of {}\n\n",
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.cores,
            describe_limit(self.limit),
        ));
        let header = [
            "size",
            "codec",
            "fps",
            "MB/s",
            "drop",
            "CPU ms/f",
            "peak MB",
            "RSS 1s>end",
            "p50 ms",
            "p99 ms",
            "bare MB/s",
            "bare fps",
            "vchat/bare",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for case in &self.cases {
            let r = case.rates();
            let t = &case.throughput;
            let bare = case.comparison.as_ref().and_then(Comparison::bare_rates);
            let dropped = t.sender.totals.dropped_out + t.receiver.totals.dropped_in;
            let opt = |v: Option<f64>, digits: usize| match v {
                Some(v) => format!("{v:.digits$}"),
                None => "-".into(),
            };
            rows.push(vec![
                case.size.to_string(),
                codec_name(case.codec).to_owned(),
                format!("{:.1}", r.fps),
                format!("{:.1}", r.mb_per_s),
                dropped.to_string(),
                opt(r.cpu_ms_per_frame, 2),
                opt(mib(t.peak_kib), 0),
                match t.rss {
                    Some(trend) => format!(
                        "{:.0}>{:.0}",
                        trend.early_kib as f64 / 1024.0,
                        trend.last_kib as f64 / 1024.0
                    ),
                    None => "-".into(),
                },
                opt(ms(case.latency.receiver.latency.p50), 2),
                opt(ms(case.latency.receiver.latency.p99), 2),
                opt(bare.map(|(mb, _)| mb), 1),
                opt(bare.map(|(_, fps)| fps), 1),
                case.ratio()
                    .map_or("-".into(), |x| format!("{:.0} %", x * 100.0)),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        for (n, row) in rows.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    if i < 2 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if n == 0 {
                let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out.push_str(&format!(
            "\nfps, MB/s (10^6 payload bytes), drop, CPU and memory: unpaced runs, frames decoded by the receiver.\n\
             CPU ms/f: user+system time of the whole process (both peers) per decoded frame.\n\
             peak MB: VmHWM during the run; RSS 1s>end: resident MB one second in and at the end.\n\
             p50/p99: capture-to-decoded latency, frames paced at {LATENCY_FPS} fps for {}.\n\
             bare: the same bytes through a plain mutual-TLS stream (no framing, CBOR or pixel work);\n\
             bare and vchat/bare: medians over {} alternating rounds of vchat and bare, ~{:.1} s each.\n\
             RSS {} MB at start, {} MB at end; {:.0} s in all.\n",
            describe_limit(self.latency_limit),
            COMPARISON_ROUNDS,
            ROUND_SECONDS,
            opt_mb(self.rss_at_start_kib),
            opt_mb(self.rss_at_end_kib),
            self.elapsed.as_secs_f64(),
        ));
        out
    }
}

fn opt_mb(kib: Option<u64>) -> String {
    mib(kib).map_or("-".into(), |m| format!("{m:.0}"))
}

fn describe_limit(limit: Limit) -> String {
    match (limit.frames, limit.duration) {
        (Some(n), Some(d)) => format!("{n} frames or {:.1} s", d.as_secs_f64()),
        (Some(n), None) => format!("{n} frames"),
        (None, Some(d)) => format!("{:.1} s", d.as_secs_f64()),
        (None, None) => "no limit".into(),
    }
}

fn case_json(case: &CaseResult) -> Value {
    let r = case.rates();
    let t = &case.throughput;
    let l = &case.latency;
    let frames = t.receiver.totals.frames_shown;
    json!({
        "size": case.size.to_string(),
        "width": case.size.width(),
        "height": case.size.height(),
        "codec": codec_name(case.codec),
        "throughput": {
            "frames_sent": t.sender.totals.frames_sent,
            "frames_decoded": frames,
            "dropped_out": t.sender.totals.dropped_out,
            "dropped_in": t.receiver.totals.dropped_in,
            "seconds": round(r.seconds, 3),
            "fps": round(r.fps, 1),
            "mb_per_s": round(r.mb_per_s, 1),
            "payload_bytes_per_frame": t
                .receiver
                .totals
                .bytes_received
                .checked_div(t.receiver.totals.frames_received),
            "cpu_ms_per_frame": r.cpu_ms_per_frame.map(|v| round(v, 3)),
            "peak_rss_mb": mib(t.peak_kib),
            "rss_early_mb": mib(t.rss.map(|x| x.early_kib)),
            "rss_end_mb": mib(t.rss.map(|x| x.last_kib)),
        },
        "latency": {
            "paced_fps": LATENCY_FPS,
            "frames_sent": l.sender.totals.frames_sent,
            "frames_decoded": l.receiver.totals.frames_shown,
            "dropped": l.sender.totals.dropped_out + l.receiver.totals.dropped_in,
            "p50_ms": ms(l.receiver.latency.p50),
            "p99_ms": ms(l.receiver.latency.p99),
            "samples": l.receiver.latency.samples,
            "cpu_ms_per_frame": per_frame(l.cpu, l.receiver.totals.frames_shown).map(|v| round(v, 3)),
        },
        "bare": case.comparison.as_ref().and_then(Comparison::bare_rates).map(|(mb, fps)| json!({
            "mb_per_s": round(mb, 1),
            "fps": round(fps, 1),
        })),
        "rounds": case.comparison.as_ref().map(|c| c.rounds.iter().map(|round_| json!({
            "frames": round_.bare.frames,
            "vchat_mb_per_s": round(round_.vchat.mb_per_s, 1),
            "bare_mb_per_s": round(round_.bare.mb_per_s(), 1),
            "bare_cpu_ms_per_frame": per_frame(round_.bare.cpu, round_.bare.frames).map(|v| round(v, 3)),
            "ratio": round_.ratio().map(|x| round(x, 3)),
        })).collect::<Vec<_>>()),
        "ratio": case.ratio().map(|x| round(x, 3)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::pipeline::CallSummary;
    use crate::call::stats::{LatencySummary, Totals};
    use crate::call::EndReason;

    fn summary(frames: u64, bytes: u64, secs: u64, p99_us: u64) -> CallSummary {
        CallSummary {
            peer: "x".into(),
            end: EndReason::HungUp,
            duration: Duration::from_secs(secs),
            totals: Totals {
                frames_sent: frames,
                bytes_sent: bytes,
                frames_received: frames,
                bytes_received: bytes,
                frames_shown: frames,
                ..Totals::default()
            },
            rtt: None,
            latency: LatencySummary {
                p50: Some(Duration::from_micros(p99_us / 2)),
                p99: Some(Duration::from_micros(p99_us)),
                samples: frames,
            },
            clock: None,
            video_span: None,
            recorded: None,
            voice: None,
            recorded_audio: None,
        }
    }

    fn call_run(frames: u64, bytes: u64) -> CallRun {
        CallRun {
            sender: summary(frames, bytes, 2, 0),
            receiver: summary(frames, bytes, 2, 3000),
            cpu: Some(Duration::from_millis(400)),
            peak_kib: Some(20 * 1024),
            rss: None,
        }
    }

    fn report() -> Report {
        let size = Size::new(640, 480).unwrap();
        Report {
            cpu_model: Some("Test CPU".into()),
            cores: 2,
            limit: Limit {
                frames: None,
                duration: Some(Duration::from_secs(2)),
            },
            latency_limit: Limit {
                frames: None,
                duration: Some(Duration::from_secs(10)),
            },
            quality: Quality::new(80).unwrap(),
            cases: vec![CaseResult {
                size,
                codec: PixelFormat::Rgb24,
                throughput: call_run(200, 200 * 921_600),
                latency: call_run(60, 60 * 921_600),
                comparison: Some(Comparison {
                    // vchat at 92.16 MB/s each round; bare at 2x, 4x and 1x that.
                    rounds: [1000, 500, 2000]
                        .map(|ms| Round {
                            vchat: rates(&call_run(200, 200 * 921_600)),
                            bare: BareRun {
                                frames: 200,
                                bytes: 200 * 921_600,
                                elapsed: Duration::from_millis(ms),
                                cpu: None,
                            },
                        })
                        .to_vec(),
                }),
            }],
            rss_at_start_kib: Some(8 * 1024),
            rss_at_end_kib: Some(30 * 1024),
            elapsed: Duration::from_secs(9),
        }
    }

    #[test]
    fn rates_and_ratio_come_from_the_receiver() {
        let case = &report().cases[0];
        let r = case.rates();
        assert_eq!(r.fps, 100.0);
        assert!((r.mb_per_s - 92.16).abs() < 1e-9);
        assert_eq!(r.cpu_ms_per_frame, Some(2.0));
        assert!(
            (case.ratio().unwrap() - 0.5).abs() < 1e-9,
            "the median round: half the bare rate"
        );
    }

    #[test]
    fn throughput_is_timed_by_the_video_span_when_known() {
        let mut run = call_run(200, 200 * 921_600);
        run.receiver.video_span = Some(Duration::from_millis(500));
        let r = rates(&run);
        assert_eq!(r.fps, 400.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn json_and_table_show_the_figures() {
        let report = report();
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        let case = &json["cases"][0];
        assert_eq!(case["codec"], "raw");
        assert_eq!(case["throughput"]["fps"], 100.0);
        assert_eq!(case["latency"]["p99_ms"], 3.0);
        assert_eq!(case["bare"]["mb_per_s"], 184.3);
        assert_eq!(case["rounds"][1]["ratio"], 0.25);
        assert_eq!(case["ratio"], 0.5);
        assert_eq!(case["latency"]["samples"], 60);
        assert_eq!(json["peak_rss_mb"], 20.0);
        let table = report.table();
        assert!(table.contains("Test CPU (2 cores)"), "{table}");
        let row = table.lines().find(|l| l.starts_with("640x480")).unwrap();
        for figure in ["raw", "100.0", "92.2", "2.00", "3.00", "184.3", "50 %"] {
            assert!(row.contains(figure), "{figure} missing from {row}");
        }
    }
}
