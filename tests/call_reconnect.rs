//! Issue 12's reconnect between two real `vchat` processes: a TCP relay
//! (real sockets) between caller and listener cuts both connections
//! mid-call, without a `bye`; the caller redials through the relay, the
//! listener takes the same peer back, frames flow again within 3 s, and the
//! listener's recording never goes back to a frame from before the cut.
//! While the link is down another pinned peer is told `busy`; a link that
//! stays down ends the call on both sides when `--reconnect SECS` runs out.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::{finish_both, paired_identities, spawn_caller, spawn_listener};
use vchat::media::{read_frame_number, Decoder, EncodedPicture, Picture, PictureFormat, Y4mReader};
use vchat::protocol::PixelFormat;

/// Hang guard for the whole call.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// Issue 12: frames flow again within this after the cut.
const BACK_WITHIN: Duration = Duration::from_secs(3);

/// How often the test looks at the recording while it waits for it.
const POLL: Duration = Duration::from_millis(10);

/// The test pattern's frame numbers in a recording that may still be
/// written to: a frame cut short at the end is not counted.
fn recorded_numbers(path: &Path) -> Vec<u64> {
    let mut reader = match Y4mReader::open(path) {
        Ok(reader) => reader,
        // Not created yet, or its header not written yet.
        Err(_) => return Vec::new(),
    };
    let (width, height) = (reader.header().width, reader.header().height);
    let mut frame = Picture::empty(PictureFormat::I420);
    let mut decoder = Decoder::new();
    let mut numbers = Vec::new();
    while let Ok(true) = reader.read_frame_into(&mut frame) {
        let rgb = decoder
            .decode(
                EncodedPicture::new(PixelFormat::I420, width, height, frame.data()),
                PictureFormat::Rgb24,
            )
            .unwrap();
        numbers.push(read_frame_number(&rgb).expect("frame number readable in recording"));
    }
    numbers
}

/// Polls until `done` holds, failing the test after `limit`.
fn poll_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(POLL);
    }
}

#[test]
fn a_cut_link_is_redialled_and_frames_flow_again_without_a_frame_twice() {
    let (a, b) = paired_identities();
    let rec = a.path().join("received-by-a.y4m");
    let video = ["--codec", "raw", "--size", "160x120", "--fps", "30"];
    let mut listener_args = vec!["--headless", "--source", "test"];
    listener_args.extend_from_slice(&video);
    listener_args.extend_from_slice(&["--record", rec.to_str().unwrap()]);
    let (listener, addr) = spawn_listener(a.path(), &listener_args, &[]);
    let relay = Relay::start(addr.parse().unwrap());
    let mut caller_args = vec!["--headless", "--source", "test", "--duration", "6"];
    caller_args.extend_from_slice(&video);
    let caller = spawn_caller(b.path(), &relay.addr.to_string(), &caller_args, &[]);

    poll_until("the first frames recorded", CALL_LIMIT, || {
        recorded_numbers(&rec).len() >= 10
    });
    relay.cut();
    let cut = Instant::now();
    // Once the redial has come through the relay, nothing from before the
    // cut can still be on its way: what was recorded by then is the past.
    poll_until("the redial through the relay", BACK_WITHIN, || {
        relay.relayed() >= 2
    });
    let before = *recorded_numbers(&rec).last().unwrap();
    poll_until("a frame after the cut", BACK_WITHIN, || {
        recorded_numbers(&rec).last().is_some_and(|&n| n > before)
    });
    let back_after = cut.elapsed();
    eprintln!("frames flowed again {back_after:?} after the cut");
    assert!(back_after < BACK_WITHIN, "{back_after:?}");

    finish_both(listener, caller, CALL_LIMIT);
    assert_eq!(relay.relayed(), 2, "one call, one reconnect");

    // The recorder fills time without a new frame with the previous one
    // (the recording plays at the call's speed), so a number may repeat
    // in a row; a frame from before the cut never comes back after a
    // newer one.
    let numbers = recorded_numbers(&rec);
    for pair in numbers.windows(2) {
        assert!(pair[0] <= pair[1], "a frame came back: {numbers:?}");
    }
    assert!(
        numbers.iter().filter(|&&n| n > before).count() >= 30,
        "about 2 s of frames after the reconnect: {numbers:?}"
    );
}

/// A third identity, Carol, and `a`'s directory and hers trusting each
/// other ("c" for `a`, "a" for her).
fn third_peer(a: &Path) -> tempfile::TempDir {
    let c = tempfile::tempdir().unwrap();
    common::run_ok(c.path(), &["keygen", "--name", "Carol"]);
    let c_cert = c.path().join("cert.pem");
    let a_cert = a.join("cert.pem");
    common::run_ok(a, &["trust", c_cert.to_str().unwrap(), "--name", "c"]);
    common::run_ok(
        c.path(),
        &["trust", a_cert.to_str().unwrap(), "--name", "a"],
    );
    c
}

#[test]
fn another_peer_is_told_busy_while_the_call_waits_for_its_own_peer() {
    let (a, b) = paired_identities();
    let c = third_peer(a.path());
    let video = ["--headless", "--source", "test", "--size", "160x120"];
    let mut listener_args = vec!["--peer", "c"];
    listener_args.extend_from_slice(&video);
    let (mut listener, addr) = spawn_listener(a.path(), &listener_args, &[]);
    let relay = Relay::start(addr.parse().unwrap());
    let mut caller = spawn_caller(b.path(), &relay.addr.to_string(), &video, &[]);
    listener.wait_for("connected to b", CALL_LIMIT);
    caller.wait_for("connected to a", CALL_LIMIT);

    relay.cut_and_hold();
    listener.wait_for("the link dropped; reconnecting", CALL_LIMIT);
    // Carol gets through (not via the relay) while the call waits for Bob.
    let mut carol_args = vec!["--reconnect", "0"];
    carol_args.extend_from_slice(&video);
    let carol = spawn_caller(c.path(), &addr, &carol_args, &[]).finish(CALL_LIMIT);
    assert_eq!(carol.status.code(), Some(1), "{}", carol.all_output());
    assert!(
        carol.stderr.iter().any(|l| l.contains("busy")),
        "{}",
        carol.all_output()
    );

    // Bob's redial comes through once the link is back: the call resumes.
    relay.release();
    listener.wait_for("the call is back", CALL_LIMIT);
    caller.wait_for("the call is back", CALL_LIMIT);
    caller.signal("INT");
    let (_, listener) = finish_both(caller, listener, CALL_LIMIT);
    assert!(
        listener
            .stdout
            .iter()
            .any(|l| l.contains("b hung up") || l.contains("call with b ended")),
        "{}",
        listener.all_output()
    );
    assert_eq!(relay.relayed(), 2, "one call, one reconnect");
}

#[test]
fn a_link_that_stays_down_ends_the_call_when_the_reconnect_window_closes() {
    let (a, b) = paired_identities();
    let args = [
        "--headless",
        "--source",
        "test",
        "--size",
        "160x120",
        "--reconnect",
        "2",
    ];
    let (mut listener, addr) = spawn_listener(a.path(), &args, &[]);
    let relay = Relay::start(addr.parse().unwrap());
    let mut caller = spawn_caller(b.path(), &relay.addr.to_string(), &args, &[]);
    // Both sides live: a cut during the handshake is a failed call, not a drop.
    listener.wait_for("connected to b", CALL_LIMIT);
    caller.wait_for("connected to a", CALL_LIMIT);
    relay.cut_and_hold();

    let why = "did not come back within 2 s";
    for (side, finished) in [
        ("caller", caller.finish(CALL_LIMIT)),
        ("listener", listener.finish(CALL_LIMIT)),
    ] {
        assert_eq!(
            finished.status.code(),
            Some(1),
            "{side}: {}",
            finished.all_output()
        );
        assert!(
            finished.stderr.iter().any(|l| l.contains(why)),
            "{side}: {}",
            finished.all_output()
        );
        // The summary on stdout says it failed, and why.
        assert!(
            finished
                .stdout
                .iter()
                .any(|l| l.contains(" failed after ") && l.contains(why)),
            "{side}: {}",
            finished.all_output()
        );
        // Causes in plain words, no library manual links.
        assert!(
            !finished.all_output().contains("http"),
            "{side}: {}",
            finished.all_output()
        );
    }
    // The caller redialled with backoff (250 ms, 500 ms, 1 s) meanwhile.
    assert!(relay.refused() >= 2, "{} redials", relay.refused());
    assert_eq!(relay.relayed(), 1);
}
