//! Issue 13, first part: on a link narrower than the video, a call costs
//! frames, not seconds of delay. A relay (real sockets) carries the
//! caller's bytes to the listener at 2 Mbit/s with a small buffer, as a
//! slow uplink does; the caller sends 1280x720 JPEG at 30 fps, about
//! 6.7 Mbit/s. Without `TCP_NOTSENT_LOWAT` the caller's kernel queued
//! megabytes behind the frame being written and the listener saw frames
//! seconds old; with it the writer waits at the socket and the newest
//! frame wins. Checked: behaviour (frames dropped at the sender, latency
//! bounded well below what a standing queue gives), not timing figures.

mod common;

use std::time::Duration;

use common::relay::Relay;
use common::{paired_identities, spawn_caller, spawn_listener, Finished};

const LIMIT: Duration = Duration::from_secs(90);

/// 2 Mbit/s.
const LINK_BYTES_PER_SECOND: u64 = 250_000;

/// The `summary` line of a finished `--stats json` run.
fn summary(run: &Finished) -> serde_json::Value {
    run.stdout
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary\n{}", run.all_output()))
}

#[test]
fn a_narrow_link_costs_frames_not_seconds_of_delay() {
    let (a, b) = paired_identities();
    let video = [
        "--headless",
        "--source",
        "test",
        "--size",
        "1280x720",
        "--codec",
        "jpeg",
        "--fps",
        "30",
        "--stats",
        "json",
    ];
    let (listener, addr) = spawn_listener(a.path(), &video, &[]);
    let relay = Relay::start_throttled(addr.parse().unwrap(), LINK_BYTES_PER_SECOND);
    let mut caller_args = video.to_vec();
    caller_args.extend_from_slice(&["--duration", "10"]);
    let caller = spawn_caller(b.path(), &relay.addr.to_string(), &caller_args, &[]);
    let caller = caller.finish(LIMIT);
    let listener = listener.finish(LIMIT);
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());

    let sent = summary(&caller);
    let received = summary(&listener);
    let p50_ms = received["latency_p50_ms"]
        .as_f64()
        .expect("latency measured");
    let p99_ms = received["latency_p99_ms"]
        .as_f64()
        .expect("latency measured");
    let frames_in = received["frames_in"].as_u64().unwrap();
    let dropped_out = sent["dropped_out"].as_u64().unwrap();
    eprintln!(
        "2 Mbit/s relay, 720p30 jpeg for 10 s: {frames_in} frames received, \
         {dropped_out} dropped at the sender, latency p50 {p50_ms} ms p99 {p99_ms} ms"
    );
    // The video is ~3x the link: most frames must be dropped at the sender,
    // not queued.
    assert!(
        dropped_out > frames_in,
        "{dropped_out} dropped, {frames_in} received"
    );
    assert!(frames_in >= 20, "frames still flow: {frames_in}");
    // A standing queue in the kernel gives seconds here (the send buffer
    // autotunes to megabytes, each 250 kB of it a second at this rate).
    assert!(p50_ms < 1500.0, "latency p50 {p50_ms} ms");
}
