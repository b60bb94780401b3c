//! Replays a lab run's voice arrivals through vchat's real jitter buffer
//! (`media::audio::Playout`), so that a change to the playout can be judged
//! on recorded paths in seconds instead of on new 60 s lab runs, whose
//! links never behave the same twice.
//!
//! ```sh
//! scripts/netlab/voice-arrivals.py DIR      # DIR/voice-arrivals.csv from a lab run
//! cargo run --release --example playout_replay -- DIR/voice-arrivals.csv [MORE.csv ...]
//! ```
//!
//! Each packet (`seq,capture_us,arrival_us`) is pushed at its arrival time,
//! carrying a 440 Hz tone that Opus encoded; the output is pulled every 20 ms
//! as the system clock does in a headless call. Printed per file: the
//! latency p50 (capture to playout), the silences over 40 ms (when, how
//! long; a frame of 20 ms is the resolution, so the shortest is 60 ms),
//! and the playout's own counts. What it leaves out: lip sync (the voice
//! never waits for pictures here) and the copies that came by the stream.

use std::process::ExitCode;

use bytes::Bytes;
use vchat::media::audio::{Playout, VoiceEncoder};

/// Pull period and frame, microseconds and samples (48 kHz).
const FRAME_US: u64 = 20_000;
const FRAME_SAMPLES: usize = 960;

/// Below this (of a 0.45 tone) a frame is silence.
const VOICED: f32 = 0.01;

struct Arrival {
    seq: u64,
    capture_us: u64,
    arrival_us: u64,
}

fn read(path: &str) -> Result<Vec<Arrival>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut arrivals = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Result<Vec<u64>, _> = line.split(',').map(str::parse).collect();
        match fields.as_deref() {
            Ok([seq, capture_us, arrival_us]) => arrivals.push(Arrival {
                seq: *seq,
                capture_us: *capture_us,
                arrival_us: *arrival_us,
            }),
            _ => {
                return Err(format!(
                    "{path}, line {}: not seq,capture_us,arrival_us (make it with scripts/netlab/voice-arrivals.py)",
                    n + 1
                ))
            }
        }
    }
    arrivals.sort_by_key(|a| a.arrival_us);
    if arrivals.is_empty() {
        return Err(format!("{path}: no packets"));
    }
    Ok(arrivals)
}

/// Opus packets of a continuous tone, one per frame, reused in a loop.
fn tone_packets(count: usize) -> Result<Vec<Bytes>, String> {
    let mut encoder = VoiceEncoder::new().map_err(|e| e.to_string())?;
    let step = std::f64::consts::TAU * 440.0 / 48_000.0;
    let mut n = 0u64;
    (0..count)
        .map(|_| {
            let frame: Vec<f32> = (0..FRAME_SAMPLES)
                .map(|_| {
                    n += 1;
                    (0.45 * (step * n as f64).sin()) as f32
                })
                .collect();
            encoder
                .encode(&frame)
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn replay(path: &str, packets: &[Bytes]) -> Result<String, String> {
    let arrivals = read(path)?;
    let mut playout = Playout::new().map_err(|e| e.to_string())?;
    let start = arrivals[0].arrival_us;
    let end = arrivals[arrivals.len() - 1].arrival_us;
    let mut out = vec![0f32; FRAME_SAMPLES];
    let (mut next, mut now) = (0, start);
    let mut latencies = Vec::new();
    let (mut silent_frames, mut heard_any, mut silences) = (0u64, false, Vec::new());
    while now < end {
        while let Some(a) = arrivals.get(next).filter(|a| a.arrival_us <= now) {
            let payload = packets[a.seq as usize % packets.len()].clone();
            playout.push(a.seq, a.capture_us, payload, a.arrival_us);
            next += 1;
        }
        let pulled = playout.pull(&mut out, now);
        if out.iter().any(|s| s.abs() > VOICED) {
            if heard_any && silent_frames * FRAME_US > 40_000 {
                let at = (now - start) as f64 / 1e6;
                silences.push(format!("{at:.2} s: {} ms", silent_frames * FRAME_US / 1000));
            }
            silent_frames = 0;
            heard_any = true;
        } else {
            silent_frames += 1;
        }
        if let Some(capture) = pulled.playing_capture_us {
            latencies.push(now.saturating_sub(capture));
        }
        now += FRAME_US;
    }
    latencies.sort_unstable();
    let p50 = latencies.get(latencies.len() / 2).copied().unwrap_or(0);
    let stats = playout.stats();
    Ok(format!(
        "{path}: latency p50 {:.1} ms, {} silences over 40 ms [{}], {} concealed, {} late, {} discarded",
        p50 as f64 / 1000.0,
        silences.len(),
        silences.join(", "),
        stats.concealed,
        stats.late,
        stats.discarded
    ))
}

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!(
            "usage: playout_replay FILE.csv [MORE.csv ...] (from scripts/netlab/voice-arrivals.py)"
        );
        return ExitCode::from(2);
    }
    let packets = match tone_packets(500) {
        Ok(packets) => packets,
        Err(e) => {
            eprintln!("cannot encode the tone: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for file in &files {
        match replay(file, &packets) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
