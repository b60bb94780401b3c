//! Voice on a link too narrow for the video: a relay paces the caller's
//! bytes to 2 Mbit/s while it sends 720p30 JPEG (about 6.5 Mbit/s) and a
//! tone. The picture degrades (frames dropped at the sender); the voice
//! must not: it goes ahead of video on the wire, and large frames go in
//! parts (protocol version 4) so a packet never waits behind a whole one.

mod common;

use std::time::Duration;

use common::relay::Relay;
use common::{paired_identities, spawn_caller, spawn_listener, wav};

const LIMIT: Duration = Duration::from_secs(90);

/// 2 Mbit/s.
const LINK_BYTES_PER_SECOND: u64 = 250_000;

#[test]
fn voice_keeps_flowing_when_the_video_is_squeezed() {
    let (a, b) = paired_identities();
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let clip = common::camera_like_y4m(dir.path());
    let mut media = common::headless_h264_from(&clip);
    media.extend(["--speaker", "none"]);
    let mut listener_args = media.clone();
    listener_args.extend(["--record-audio", heard.to_str().unwrap()]);
    let (listener, addr) = spawn_listener(a.path(), &listener_args, &[]);
    let relay = Relay::start_throttled(addr.parse().unwrap(), LINK_BYTES_PER_SECOND);
    let mut caller_args = media.clone();
    caller_args.extend([
        "--audio-source",
        "tone:440",
        "--duration",
        "15",
        "--max-bitrate",
        "4000",
    ]);
    let caller = spawn_caller(b.path(), &relay.addr.to_string(), &caller_args, &[]);
    let caller = caller.finish(LIMIT);
    let listener = listener.finish(LIMIT);
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());

    let sent = caller.summary();
    let received = listener.summary();
    let audio_p50 = received["audio_latency_p50_ms"].as_f64().unwrap();
    let audio_p99 = received["audio_latency_p99_ms"].as_f64().unwrap();
    let video_p50 = received["latency_p50_ms"].as_f64().unwrap();
    let seconds = listener.events("stats");
    for v in &seconds {
        eprintln!(
            "{:>5} s: video {} Mbit/s latency {} ms; voice latency {} ms, buffered {} ms, target {} ms, sync delay {} ms, a/v {} ms, concealed {}",
            v["elapsed_s"], v["mbit_in"], v["latency_p50_ms"], v["audio_latency_p50_ms"],
            v["audio_buffered_ms"],
            v["audio_jitter_target_ms"], v["audio_sync_delay_ms"], v["av_offset_p50_ms"], v["audio_concealed"]
        );
    }
    let samples = wav::read(&heard);
    let voiced = wav::voiced(&samples);
    let gap = wav::longest_gap_ms(voiced);
    eprintln!(
        "2 Mbit/s relay, 720p30 h264 + voice for 15 s: video {} frames in, {} dropped out, \
         latency p50 {video_p50} ms; voice {} packets out, {} in, {} concealed, latency p50 \
         {audio_p50} ms p99 {audio_p99} ms, longest gap {gap:.1} ms",
        received["frames_in"],
        sent["dropped_out"],
        sent["audio_packets_out"],
        received["audio_packets_in"],
        received["audio_concealed"],
    );
    // The video fills the link (its rate control probes above it)...
    let seconds: Vec<f64> = seconds
        .iter()
        .filter_map(|v| v["mbit_in"].as_f64())
        .collect();
    let busy = seconds.iter().rev().take(8).sum::<f64>() / 8.0;
    assert!(
        busy > 1.2,
        "the video used {busy:.2} Mbit/s of the 2: {seconds:?}"
    );
    // ...and the voice still flows: every packet is sent and arrives (none
    // dropped for age at the sender, so none waited 400 ms behind video),
    // and it is heard through nearly all of the call.
    let out = sent["audio_packets_out"].as_u64().unwrap();
    assert!(out >= 700, "{out} packets sent in 15 s");
    assert_eq!(sent["audio_dropped_out"], 0, "{sent}");
    assert!(received["audio_packets_in"].as_u64().unwrap() + 2 >= out);
    let heard_secs = voiced.len() as f64 / wav::RATE;
    assert!(
        heard_secs >= 13.0,
        "voice heard for {heard_secs:.1} s of 15"
    );
    // What is left to do is measured, not asserted here (BENCHMARKS.md): the
    // relay's 64 KiB queue swings by some 200 ms as the video probes, and
    // the jitter buffer grows to cover it.
    assert!(audio_p50 < 1000.0, "voice latency p50 {audio_p50} ms");
}
