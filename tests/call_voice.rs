//! Voice end to end: two real `vchat` processes with tone sources, each
//! recording what it played (`--record-audio`), checked for the tone, the
//! length, gaps and lip sync; mute; a peer that takes no audio; bad audio
//! options refused before any call.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    finish_both, paired_identities, run_err, spawn_caller, spawn_listener, wav, Finished,
};

const CALL_LIMIT: Duration = Duration::from_secs(90);

/// A call of `secs` seconds between a listener and a caller, each with
/// its own extra arguments; both must end well.
fn call(listener_args: &[&str], caller_args: &[&str], secs: &str) -> (Finished, Finished) {
    let (a, b) = paired_identities();
    let common = [
        "--headless",
        "--source",
        "test",
        "--size",
        "160x120",
        "--stats",
        "json",
    ];
    let mut l: Vec<&str> = common.to_vec();
    l.extend_from_slice(listener_args);
    let mut c: Vec<&str> = common.to_vec();
    c.extend_from_slice(&["--duration", secs]);
    c.extend_from_slice(caller_args);
    let (listener, addr) = spawn_listener(a.path(), &l, &[]);
    let caller = spawn_caller(b.path(), &addr, &c, &[]);
    let (caller, listener) = finish_both(caller, listener, CALL_LIMIT);
    (listener, caller)
}

/// What a side recorded: the peer's tone, whole (`wav::assert_heard_whole`).
fn heard_whole(path: &Path, tone: f64, call_secs: f64) {
    let samples = wav::read(path);
    let total = samples.len() as f64 / wav::RATE;
    assert!(
        (call_secs - 1.0..=call_secs + 2.0).contains(&total),
        "{}: {total:.2} s recorded of a {call_secs} s call",
        path.display()
    );
    let voiced = wav::voiced(&samples);
    let heard = voiced.len() as f64 / wav::RATE;
    // The first packets need a jitter buffer's depth; the rest is voice.
    assert!(
        heard >= call_secs - 1.5,
        "{}: only {heard:.2} s of voice",
        path.display()
    );
    wav::assert_heard_whole(voiced, &path.display().to_string());
    let hz = wav::dominant_hz(voiced);
    assert!(
        (hz - tone).abs() <= 10.0,
        "{}: {hz} Hz, not {tone}",
        path.display()
    );
}

#[test]
fn tones_both_ways_are_heard_whole_and_in_sync_with_the_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let heard_by_listener = dir.path().join("listener.wav");
    let heard_by_caller = dir.path().join("caller.wav");
    let l = heard_by_listener.to_str().unwrap();
    let c = heard_by_caller.to_str().unwrap();
    let (listener, caller) = call(
        &[
            "--audio-source",
            "tone:440",
            "--speaker",
            "none",
            "--record-audio",
            l,
        ],
        &[
            "--audio-source",
            "tone:880",
            "--speaker",
            "none",
            "--record-audio",
            c,
        ],
        "6",
    );
    heard_whole(&heard_by_listener, 880.0, 6.0);
    heard_whole(&heard_by_caller, 440.0, 6.0);
    for end in [&listener, &caller] {
        let s = end.summary();
        assert!(s["audio_packets_in"].as_u64().unwrap() >= 200, "{s}");
        assert!(s["audio_packets_out"].as_u64().unwrap() >= 200, "{s}");
        assert!(
            s["recorded_audio_samples"].as_u64().unwrap() > 200_000,
            "{s}"
        );
        // Lip sync, second by second: the pictures wait for the voice.
        let offsets: Vec<f64> = end
            .events("stats")
            .iter()
            .filter_map(|v| v["av_offset_p50_ms"].as_f64())
            .collect();
        assert!(offsets.len() >= 3, "{}", end.all_output());
        let mut sorted = offsets.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        assert!(
            (-125.0..=45.0).contains(&median),
            "A/V offset {median} ms outside BT.1359's window: {offsets:?}"
        );
        // Both sides said the level they heard.
        let last = end.events("stats").pop().unwrap();
        assert!(last["level_in_db"].as_f64().unwrap() > -20.0, "{last}");
    }
}

#[test]
fn a_muted_caller_sends_no_voice_and_the_listener_sees_it_muted() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("listener.wav");
    let (listener, caller) = call(
        &[
            "--audio-source",
            "tone:440",
            "--speaker",
            "none",
            "--record-audio",
            heard.to_str().unwrap(),
        ],
        &["--audio-source", "tone:880", "--speaker", "none", "--muted"],
        "3",
    );
    let s = caller.summary();
    assert_eq!(s["audio_packets_out"], 0, "{s}");
    assert!(s["audio_packets_in"].as_u64().unwrap() > 50, "{s}");
    let seconds = listener.events("stats");
    assert!(
        seconds.iter().any(|v| v["peer_muted"] == true),
        "{}",
        listener.all_output()
    );
    assert!(
        wav::voiced(&wav::read(&heard)).is_empty(),
        "a muted peer was heard"
    );
}

#[test]
fn a_peer_without_audio_still_gets_a_video_call() {
    let (listener, caller) = call(
        &["--audio-source", "tone:440", "--speaker", "none"],
        &["--no-audio"],
        "3",
    );
    let l = listener.summary();
    let c = caller.summary();
    assert!(c["frames_in"].as_u64().unwrap() > 30, "{c}");
    assert!(l["frames_in"].as_u64().unwrap() > 30, "{l}");
    // The caller listed no audio, so the listener sent none; and sent none itself.
    assert!(l["audio_packets_out"].as_u64().unwrap_or(0) == 0, "{l}");
    assert!(c["audio_packets_out"].as_u64().unwrap_or(0) == 0, "{c}");
}

#[test]
fn bad_audio_options_are_refused_before_any_call() {
    let (a, _b) = paired_identities();
    let dir = a.path();
    // `vchat call` (to a port nobody listens on) with these options.
    let refused = |options: &[&str]| {
        let mut args = vec!["call", "127.0.0.1:9", "--peer", "b", "--headless"];
        args.extend_from_slice(&["--source", "test"]);
        args.extend_from_slice(options);
        run_err(dir, &args)
    };
    let missing = format!("wav:{}", dir.join("missing.wav").display());
    let e = refused(&["--audio-source", &missing]);
    assert!(
        e.contains("missing.wav") && e.contains("cannot read"),
        "{e}"
    );
    let e = refused(&["--audio-source", "tone:5"]);
    assert!(e.contains("tone:HZ"), "{e}");
    let e = refused(&["--speaker", "left"]);
    assert!(e.contains("none"), "{e}");
    let e = refused(&["--no-audio", "--muted"]);
    assert!(e.contains("cannot be used with"), "{e}");
    let not_wav = dir.join("not.wav");
    std::fs::write(&not_wav, "hello").unwrap();
    let e = refused(&["--audio-source", &format!("wav:{}", not_wav.display())]);
    assert!(e.contains("not a usable WAV"), "{e}");
}
