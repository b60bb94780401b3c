//! Calls between two real `vchat` processes on loopback, headless, with the
//! test pattern both ways: frames arrive both ways intact, hang-ups are
//! clean, a vanished peer is reported, and a slow receiver costs frames, not
//! latency.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{finish_both, paired_identities, spawn_caller, spawn_listener, Running};
use vchat::media::{
    read_frame_number, test_pattern, CapturedFrame, Decoder, EncodedPicture, Encoder, FrameContent,
    Picture, PictureFormat, Quality, Y4mReader,
};
use vchat::protocol::PixelFormat;

/// Hang guard for a whole call in these tests.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// A headless listener sending the test pattern.
fn start_listener(dir: &Path, extra: &[&str]) -> (Running, String) {
    let mut args = vec!["--headless", "--source", "test"];
    args.extend_from_slice(extra);
    spawn_listener(dir, &args, &[])
}

/// A headless caller sending the test pattern.
fn start_caller(dir: &Path, addr: &str, extra: &[&str]) -> Running {
    let mut args = vec!["--headless", "--source", "test"];
    args.extend_from_slice(extra);
    spawn_caller(dir, addr, &args, &[])
}

fn summary(stdout: &[String]) -> serde_json::Value {
    let last = stdout
        .iter()
        .rev()
        .find(|l| l.contains("\"summary\""))
        .unwrap_or_else(|| panic!("no JSON summary in {stdout:?}"));
    serde_json::from_str(last).unwrap()
}

/// Reads a recording and checks every frame is the test pattern frame it
/// claims to be: numbers never go back (a number repeats where the recorder
/// filled a period with no new frame), and (for raw video) every pixel
/// equals what the sender drew, converted to 4:2:0 as the recorder stores it.
fn check_recording(path: &Path, exact: bool) -> Vec<u64> {
    let mut reader = Y4mReader::open(path).expect("recording is a readable Y4M file");
    let (width, height) = (reader.header().width, reader.header().height);
    let mut frame = Picture::empty(PictureFormat::I420);
    let mut decoder = Decoder::new();
    let mut encoder = Encoder::new();
    let mut numbers = Vec::new();
    while reader.read_frame_into(&mut frame).expect("frame") {
        let rgb = decoder
            .decode(
                EncodedPicture::new(PixelFormat::I420, width, height, frame.data()),
                PictureFormat::Rgb24,
            )
            .unwrap();
        let n = read_frame_number(&rgb).expect("frame number readable in recording");
        if let Some(&last) = numbers.last() {
            assert!(n >= last, "frame numbers must not go back: {last} then {n}");
        }
        if exact {
            let sent = CapturedFrame {
                captured_at: Instant::now(),
                sequence: n,
                content: FrameContent::Picture(test_pattern(n, width, height).unwrap()),
            };
            let expected = encoder
                .encode(&sent, PixelFormat::I420, Quality::new(90).unwrap())
                .unwrap();
            assert!(
                expected.payload == frame.data(),
                "frame {n}: pixels differ from what the sender drew"
            );
        }
        numbers.push(n);
    }
    numbers
}

#[test]
fn raw_frames_arrive_both_ways_intact_and_hang_up_is_clean() {
    let (a, b) = paired_identities();
    let rec_a = a.path().join("received-by-a.y4m");
    let rec_b = b.path().join("received-by-b.y4m");
    let common = [
        "--codec", "raw", "--size", "160x120", "--fps", "30", "--stats", "json",
    ];
    let mut listener_args = common.to_vec();
    listener_args.extend(["--record", rec_a.to_str().unwrap(), "--frames", "45"]);
    let (listener, addr) = start_listener(a.path(), &listener_args);
    let mut caller_args = common.to_vec();
    caller_args.extend(["--record", rec_b.to_str().unwrap()]);
    let caller = start_caller(b.path(), &addr, &caller_args);

    let (listener, caller) = finish_both(listener, caller, CALL_LIMIT);

    // The listener hung up after 45 frames; the caller heard its bye.
    let l = summary(&listener.stdout);
    let c = summary(&caller.stdout);
    assert_eq!(l["end"], "frame limit reached");
    assert_eq!(l["frames_out"], 45);
    assert!(
        c["end"].as_str().unwrap().starts_with("peer hung up"),
        "{c}"
    );
    assert!(c["frames_in"].as_u64().unwrap() >= 40, "{c}");
    assert!(l["frames_in"].as_u64().unwrap() >= 10, "{l}");

    let by_b = check_recording(&rec_b, true);
    let by_a = check_recording(&rec_a, true);
    assert!(by_b.len() >= 30, "caller recorded {} frames", by_b.len());
    assert!(by_a.len() >= 10, "listener recorded {} frames", by_a.len());
    assert_eq!(
        c["recorded_frames"].as_u64().unwrap(),
        by_b.len() as u64,
        "summary counts what was written"
    );
    // Nothing recorded that the listener did not send.
    assert!(*by_b.last().unwrap() < 45 + l["dropped_out"].as_u64().unwrap());
}

/// A peer sending 10 frames/s into a 30 fps recording: the file must play at
/// the call's speed, each picture covering the three periods it was on
/// screen, not 3x fast.
#[test]
fn a_recording_plays_at_the_speed_of_the_call() {
    let (a, b) = paired_identities();
    let rec = b.path().join("slow-peer.y4m");
    let (listener, addr) = start_listener(
        a.path(),
        &[
            "--codec", "raw", "--size", "160x120", "--fps", "10", "--frames", "20",
        ],
    );
    let caller = start_caller(
        b.path(),
        &addr,
        &[
            "--codec",
            "raw",
            "--size",
            "160x120",
            "--fps",
            "30",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    finish_both(listener, caller, CALL_LIMIT);
    let numbers = check_recording(&rec, true);
    let mut distinct = numbers.clone();
    distinct.dedup();
    assert!(distinct.len() >= 15, "{numbers:?}");
    // From the first picture to the last, 100 ms per source frame at 30 fps
    // is 3 file frames each (the source skips numbers if it ever falls behind).
    let span = distinct.last().unwrap() - distinct.first().unwrap();
    let expected = span * 3 + 1;
    eprintln!(
        "recorded {} frames for source frames {:?}..={:?}",
        numbers.len(),
        distinct.first(),
        distinct.last()
    );
    assert!(
        numbers.len() as u64 + 2 >= expected && numbers.len() as u64 <= expected + 2,
        "{} frames recorded for source frames {}..={}: {numbers:?}",
        numbers.len(),
        distinct.first().unwrap(),
        distinct.last().unwrap()
    );
}

#[test]
fn jpeg_frames_carry_their_frame_numbers() {
    let (a, b) = paired_identities();
    let rec = b.path().join("jpeg.y4m");
    let (listener, addr) = start_listener(
        a.path(),
        &["--codec", "jpeg", "--size", "320x240", "--duration", "2"],
    );
    let caller = start_caller(
        b.path(),
        &addr,
        &[
            "--codec",
            "jpeg",
            "--size",
            "320x240",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    let (listener, caller) = finish_both(listener, caller, CALL_LIMIT);
    let numbers = check_recording(&rec, false);
    assert!(numbers.len() >= 10, "{numbers:?}");
    // One-line summaries for people.
    let line = caller.stdout.last().unwrap();
    assert!(
        line.starts_with("call with a ended (peer hung up"),
        "{line}"
    );
    assert!(listener
        .stdout
        .last()
        .unwrap()
        .contains("(duration reached)"));
}

#[test]
fn a_killed_peer_is_reported_and_the_survivor_exits_non_zero() {
    let (a, b) = paired_identities();
    // Reconnecting off: the listener would otherwise wait for the peer to
    // come back (tests/call_reconnect.rs).
    let (listener, addr) = start_listener(a.path(), &["--size", "160x120", "--reconnect", "0"]);
    let mut caller = start_caller(b.path(), &addr, &["--size", "160x120", "--stats", "json"]);
    caller.wait_for("\"fps_in\"", Duration::from_secs(30));
    caller.signal("KILL");
    let killed_at = Instant::now();
    let listener = listener.finish(CALL_LIMIT);
    assert!(!listener.status.success(), "{}", listener.all_output());
    let err = listener.stderr.join("\n");
    assert!(err.contains("connection lost"), "{err}");
    assert!(killed_at.elapsed() < vchat::call::PEER_TIMEOUT + Duration::from_secs(5));
    let _ = caller.finish(CALL_LIMIT);
}

#[test]
fn a_silent_peer_is_detected_by_the_ping_timeout() {
    let (a, b) = paired_identities();
    // Reconnecting off: the listener would otherwise wait for the peer to
    // come back (tests/call_reconnect.rs).
    let (listener, addr) = start_listener(a.path(), &["--size", "160x120", "--reconnect", "0"]);
    let mut caller = start_caller(b.path(), &addr, &["--size", "160x120", "--stats", "json"]);
    caller.wait_for("\"fps_in\"", Duration::from_secs(30));
    // Frozen, like a pulled cable: the socket stays open but nothing moves.
    // Taken before the signal: starting `kill` can take a while on a
    // loaded machine, and that time must not count against the lower bound.
    let stopped_at = Instant::now();
    caller.signal("STOP");
    let listener = listener.finish(CALL_LIMIT);
    let detected_after = stopped_at.elapsed();
    caller.signal("KILL");
    let _ = caller.finish(CALL_LIMIT);
    assert!(!listener.status.success(), "{}", listener.all_output());
    let err = listener.stderr.join("\n");
    assert!(err.contains("vanished"), "{err}");
    assert!(
        detected_after >= vchat::call::PEER_TIMEOUT - Duration::from_secs(1)
            && detected_after < vchat::call::PEER_TIMEOUT + Duration::from_secs(5),
        "detected after {detected_after:?}"
    );
}

#[test]
fn a_slow_receiver_costs_frames_not_latency() {
    let (a, b) = paired_identities();
    // The listener sends raw 1280x720 (2.8 MB a frame, 83 MB/s) to a caller
    // that is frozen 400 ms of every 700: each stall holds back ~33 MB, far
    // more than the loopback socket buffers (a few MB) can absorb, so the
    // sender must either queue (latency grows) or drop (what we want).
    let (listener, addr) = start_listener(
        a.path(),
        &[
            "--codec",
            "raw",
            "--size",
            "1280x720",
            "--fps",
            "30",
            "--duration",
            "14",
            "--stats",
            "json",
        ],
    );
    let mut caller = start_caller(
        b.path(),
        &addr,
        &["--codec", "jpeg", "--size", "160x120", "--stats", "json"],
    );
    caller.wait_for("\"fps_in\"", Duration::from_secs(30));
    // Duty cycle: 300 ms running (time to drain what the buffers hold, even
    // on a loaded machine), 400 ms stopped, for 10 s.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        caller.signal("STOP");
        std::thread::sleep(Duration::from_millis(400));
        caller.signal("CONT");
        std::thread::sleep(Duration::from_millis(300));
    }
    let caller = caller.finish(CALL_LIMIT);
    let listener = listener.finish(CALL_LIMIT);
    assert!(
        caller.status.success(),
        "{}\nthe listener's {}",
        caller.all_output(),
        listener.all_output()
    );
    assert!(listener.status.success(), "{}", listener.all_output());

    let l = summary(&listener.stdout);
    assert!(
        l["dropped_out"].as_u64().unwrap() > 50,
        "the sender dropped stale frames instead of queueing them: {l}"
    );
    let c = summary(&caller.stdout);
    assert!(c["frames_in"].as_u64().unwrap() > 10, "{c}");
    // Latency of what was shown stays bounded by the stall (0.4 s) plus
    // socket buffers; a queue would grow it by seconds over the run.
    let p99 = c["latency_p99_ms"].as_f64().unwrap();
    assert!(
        p99 < 2000.0,
        "latency p99 {p99} ms: frames queued instead of dropped\n{c}"
    );
}
