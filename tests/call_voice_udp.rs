//! Voice by UDP datagram beside the TLS stream, between two real `vchat`
//! processes through relays on real sockets: the TCP relay carries the
//! stream, a UDP relay on the same port number the datagrams.
//!
//! - The stream stalls (as a lost TCP segment holds everything behind it),
//!   and the voice goes on: no gap over 40 ms (one up to 100 ms is let
//!   pass for a loaded machine, `wav::assert_heard_whole`). With `--no-udp` the same
//!   stalls are heard, which shows the test can tell.
//! - UDP stops passing mid-call: voice goes back into the stream within
//!   the path's liveness, and returns to UDP when datagrams pass again.
//! - A stranger's datagrams on the listener's port are refused and counted,
//!   never answered, and the call does not notice.
//! - A listener that cannot have its UDP port says so and calls keep voice
//!   in the stream.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::relay::{Relay, UdpRelay};
use common::{
    finish_both, paired_identities, spawn_caller, spawn_listener, wav, Finished, Running,
};

const CALL_LIMIT: Duration = Duration::from_secs(90);
const READY: Duration = Duration::from_secs(30);
const UDP_UP: &str = "voice goes by UDP datagrams now";
const UDP_DOWN: &str = "voice datagrams stopped coming through";

/// Both ends send a tone (the caller 440 Hz); the listener records what it
/// heard. Small pictures: the voice is what is tested.
fn args(seconds: &str, wav: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless",
        "--source",
        "test",
        "--size",
        "160x120",
        "--stats",
        "json",
        "--speaker",
        "none",
        "--audio-source",
        "tone:440",
    ]
    .map(String::from)
    .to_vec();
    if let Some(path) = wav {
        args.push("--record-audio".into());
        args.push(path.to_str().unwrap().into());
    }
    args.push("--duration".into());
    args.push(seconds.into());
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A listener, and a TCP relay to it with a UDP relay on the same port.
/// The TCP relay paces nothing (100 MB/s) but can stall.
fn listener_behind_relays(
    dir: &Path,
    listener_args: &[&str],
) -> (Running, SocketAddr, Relay, UdpRelay) {
    let (listener, addr) = spawn_listener(dir, listener_args, &[]);
    let addr: SocketAddr = addr.parse().unwrap();
    // The UDP port of the TCP relay's number is almost always free; if not,
    // another relay.
    for _ in 0..20 {
        let relay = Relay::start_throttled(addr, 100_000_000);
        if let Some(udp) = UdpRelay::start(relay.addr.port(), addr) {
            return (listener, addr, relay, udp);
        }
    }
    panic!("no UDP port free beside 20 relays");
}

/// The listener's recording: the caller's tone, and its longest gap (ms).
fn heard(path: &Path) -> (f64, f64) {
    let samples = wav::read(path);
    let voiced = wav::voiced(&samples);
    (voiced.len() as f64 / wav::RATE, wav::longest_gap_ms(voiced))
}

/// Checks the listener's recording heard the tone whole
/// (`wav::assert_heard_whole`).
fn heard_whole(path: &Path, what: &str) {
    let samples = wav::read(path);
    wav::assert_heard_whole(wav::voiced(&samples), what);
}

fn count(end: &Finished, key: &str) -> u64 {
    end.summary()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {}", end.summary()))
}

/// A call through the relays with the stream stalled twice for 600 ms;
/// returns the listener's voiced recording and both ends.
fn call_with_stalls(caller_extra: &[&str]) -> (Vec<f32>, Finished, Finished) {
    let (a, b) = paired_identities();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("heard.wav");
    let (listener, _, relay, _udp) =
        listener_behind_relays(a.path(), &refs(&args("60", Some(&recording))));
    let mut caller_args = args("7", None);
    caller_args.extend(caller_extra.iter().map(|s| s.to_string()));
    let mut caller = spawn_caller(b.path(), &relay.addr.to_string(), &refs(&caller_args), &[]);
    // The stalls come once voice flows (and, by default, has found UDP).
    let waited_for = if caller_extra.contains(&"--no-udp") {
        "connected"
    } else {
        UDP_UP
    };
    caller.wait_for(waited_for, READY);
    for _ in 0..2 {
        // Timing the scenario, not waiting for anything.
        std::thread::sleep(Duration::from_millis(1500));
        relay.stall(Duration::from_millis(600));
    }
    let (caller, listener) = finish_both(caller, listener, CALL_LIMIT);
    let (voiced, gap) = heard(&recording);
    eprintln!(
        "stalls {caller_extra:?}: {voiced:.2} s heard, longest gap {gap:.1} ms, {} of {} packets by UDP",
        count(&caller, "audio_udp_out"),
        count(&caller, "audio_packets_out")
    );
    assert!(voiced >= 5.0, "only {voiced:.2} s of voice heard");
    let samples = wav::read(&recording);
    (wav::voiced(&samples).to_vec(), caller, listener)
}

#[test]
fn voice_by_datagram_goes_on_while_the_stream_stalls() {
    let _serial = common::one_at_a_time();
    let (voiced, caller, listener) = call_with_stalls(&[]);
    wav::assert_heard_whole(
        &voiced,
        &format!("while the stream stalled\n{}", listener.all_output()),
    );
    let (sent, by_udp) = (
        count(&caller, "audio_packets_out"),
        count(&caller, "audio_udp_out"),
    );
    assert!(
        by_udp * 10 >= sent * 9,
        "{by_udp} of {sent} packets went by UDP"
    );
    let first_by_udp = count(&listener, "audio_udp_in");
    assert!(first_by_udp * 10 >= count(&listener, "audio_packets_in") * 9);
    // Every packet came in three datagrams: the copies were dropped.
    assert!(count(&listener, "audio_duplicates") >= first_by_udp);
    assert_eq!(count(&listener, "audio_udp_refused"), 0);
}

#[test]
fn with_no_udp_the_same_stalls_are_heard() {
    let _serial = common::one_at_a_time();
    let (voiced, caller, listener) = call_with_stalls(&["--no-udp"]);
    let gap = wav::longest_gap_ms(&voiced);
    assert_eq!(count(&caller, "audio_udp_out"), 0);
    assert_eq!(count(&listener, "audio_udp_in"), 0);
    assert!(
        gap >= 200.0,
        "the stalls left no gap ({gap:.1} ms): this test cannot tell the paths apart\n{}",
        listener.all_output()
    );
}

fn caller_of(b: &tempfile::TempDir, relay: &Relay, seconds: &str) -> Running {
    spawn_caller(
        b.path(),
        &relay.addr.to_string(),
        &refs(&args(seconds, None)),
        &[],
    )
}

#[test]
fn voice_goes_back_to_the_stream_when_udp_stops_and_returns_with_it() {
    let _serial = common::one_at_a_time();
    let (a, b) = paired_identities();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("heard.wav");
    let (listener, _, relay, udp) =
        listener_behind_relays(a.path(), &refs(&args("60", Some(&recording))));
    let (mut listener, mut caller) = (listener, caller_of(&b, &relay, "10"));
    caller.wait_for(UDP_UP, READY);
    listener.wait_for(UDP_UP, READY);
    // Timing the scenario: voice by UDP for a while, then UDP stops.
    std::thread::sleep(Duration::from_millis(1500));
    udp.cut();
    caller.wait_for(UDP_DOWN, READY);
    let forwarded = udp.forwarded();
    // Timing the scenario: a while in the stream before UDP comes back.
    std::thread::sleep(Duration::from_millis(1500));
    udp.restore();
    caller.wait_for(UDP_UP, READY);
    let (caller, listener) = finish_both(caller, listener, CALL_LIMIT);
    assert!(
        udp.forwarded() > forwarded,
        "nothing passed after the restore"
    );
    let (voiced, gap) = heard(&recording);
    eprintln!(
        "UDP cut and restored: {voiced:.2} s heard, longest gap {gap:.1} ms, {} of {} packets by UDP",
        count(&caller, "audio_udp_out"),
        count(&caller, "audio_packets_out")
    );
    assert!(voiced >= 8.0, "only {voiced:.2} s of voice heard");
    // The switch costs about the doubt (300 ms), once.
    assert!(gap <= 600.0, "a gap of {gap:.1} ms");
    assert!(
        gap >= 100.0,
        "no gap at all ({gap:.1} ms): was UDP cut while voice used it?"
    );
    let sent = count(&caller, "audio_packets_out");
    let got = count(&listener, "audio_packets_in");
    assert!(got * 100 >= sent * 85, "{got} of {sent} packets arrived");
    let by_udp = count(&caller, "audio_udp_out");
    assert!(
        by_udp < sent,
        "every packet went by UDP, none by the stream"
    );
    assert!(by_udp > 0);
}

#[test]
fn a_strangers_datagrams_are_refused_unanswered_and_unnoticed() {
    let _serial = common::one_at_a_time();
    let (a, b) = paired_identities();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("heard.wav");
    let (listener, addr) = spawn_listener(a.path(), &refs(&args("60", Some(&recording))), &[]);
    let mut caller = spawn_caller(b.path(), &addr, &refs(&args("6", None)), &[]);
    caller.wait_for(UDP_UP, READY);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.connect(&addr).unwrap();
    // Junk of every length, then datagrams that look right up to the tag:
    // version 1, a counter, an ack, a body, a wrong tag.
    let mut sent = 0u64;
    for n in 0..3000u32 {
        let len = (n as usize * 7919) % 1400;
        let junk: Vec<u8> = (0..len).map(|i| (i as u32 * 31 + n) as u8).collect();
        sent += u64::from(stranger.send(&junk).is_ok());
        let mut forged = vec![1u8];
        forged.extend_from_slice(&u64::from(n + 1).to_be_bytes());
        forged.extend_from_slice(&0u64.to_be_bytes());
        forged.extend_from_slice(&[0x42; 60]);
        sent += u64::from(stranger.send(&forged).is_ok());
        if n % 20 == 19 {
            // Spread over about 1.5 s in bursts of 40 datagrams, so the
            // socket's buffer (about 208 KB) takes them even when the
            // listener is held up for some tens of milliseconds.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let (_caller, listener) = finish_both(caller, listener, CALL_LIMIT);
    // None answered: the listener never sends to an unproven address.
    stranger
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        stranger.recv(&mut buf).is_err(),
        "the listener answered a stranger"
    );
    let refused = count(&listener, "audio_udp_refused");
    assert!(
        refused * 2 >= sent,
        "{refused} of {sent} datagrams counted as refused"
    );
    let (voiced, gap) = heard(&recording);
    eprintln!("{sent} stranger's datagrams, {refused} refused; {voiced:.2} s heard, longest gap {gap:.1} ms");
    assert!(voiced >= 4.0, "only {voiced:.2} s of voice heard");
    heard_whole(&recording, "while a stranger sent datagrams");
    assert!(count(&listener, "audio_udp_in") > 0);
}

#[test]
fn a_listener_whose_udp_port_is_taken_keeps_voice_in_the_stream() {
    let _serial = common::one_at_a_time();
    let (a, b) = paired_identities();
    // A port whose UDP side someone else holds: the listener gets TCP only.
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let mut listener_args = vec![
        "--dir".to_owned(),
        a.path().to_str().unwrap().to_owned(),
        "listen".into(),
        "--once".into(),
        "--bind".into(),
        bind.clone(),
        "--peer".into(),
        "b".into(),
    ];
    listener_args.extend(args("60", None));
    let mut listener = Running::spawn(&refs(&listener_args), &[]);
    let taken = listener.wait_for("cannot take UDP port", READY);
    assert!(taken.contains(&port.to_string()), "{taken}");
    listener.wait_for("listening on", READY);
    let caller = spawn_caller(b.path(), &bind, &refs(&args("4", None)), &[]);
    let (caller, listener) = finish_both(caller, listener, CALL_LIMIT);
    // The caller's datagrams went to the other holder of the port.
    assert_eq!(count(&caller, "audio_udp_out"), 0);
    assert_eq!(count(&listener, "audio_udp_out"), 0);
    assert!(count(&listener, "audio_packets_in") >= 100);
    drop(held);
}
