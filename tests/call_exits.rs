//! Every exit of `listen` and `call` says how it ended (issue 12): a summary
//! on stdout, failed calls included; with
//! `--stats json` the last line on stdout is an `end` event, also when the
//! call failed or an idle listener was interrupted; and a `--record` file
//! that would be clobbered is refused before anything is dialled.

mod common;

use std::time::Duration;

use common::{paired_identities, spawn_caller, spawn_serving_listener, Running};

const LIMIT: Duration = Duration::from_secs(60);

fn end_event(stdout: &[String]) -> serde_json::Value {
    let last = stdout.last().expect("a line on stdout");
    let event: serde_json::Value = serde_json::from_str(last).expect("JSON");
    assert_eq!(event["event"], "end", "{last}");
    event
}

/// An address nothing listens on: a port bound and released.
fn closed_address() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

#[test]
fn a_failed_call_still_ends_with_an_end_event() {
    let (_a, b) = paired_identities();
    let args = ["--headless", "--source", "test", "--stats", "json"];
    let caller = spawn_caller(b.path(), &closed_address(), &args, &[]).finish(LIMIT);
    assert_eq!(caller.status.code(), Some(1), "{}", caller.all_output());
    let event = end_event(&caller.stdout);
    assert_eq!(event["ok"], false);
    let reason = event["reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    // The summary comes first, failed, naming the peer and the same cause.
    let summary: serde_json::Value =
        serde_json::from_str(&caller.stdout[caller.stdout.len() - 2]).expect("JSON summary");
    assert_eq!(summary["event"], "summary", "{}", caller.all_output());
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["peer"], "a");
    assert_eq!(summary["end"], reason);
}

#[test]
fn a_failed_call_prints_a_summary_line_without_stats() {
    let (_a, b) = paired_identities();
    let args = ["--headless", "--source", "test"];
    let caller = spawn_caller(b.path(), &closed_address(), &args, &[]).finish(LIMIT);
    assert_eq!(caller.status.code(), Some(1), "{}", caller.all_output());
    assert_eq!(caller.stdout.len(), 1, "{}", caller.all_output());
    let line = &caller.stdout[0];
    assert!(line.starts_with("call with a failed after "), "{line}");
    // The cause on stdout is the one on stderr.
    let error = caller
        .stderr
        .iter()
        .find_map(|l| l.strip_prefix("vchat: error: "))
        .expect("an error line on stderr");
    assert!(line.ends_with(error), "{line} / {error}");
}

#[test]
fn an_existing_recording_is_not_clobbered_and_nothing_is_dialled() {
    let (_a, b) = paired_identities();
    let recording = b.path().join("earlier.y4m");
    std::fs::write(&recording, b"an earlier call").unwrap();
    let record = recording.to_str().unwrap();
    // A listener that must see no connection at all.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let args = ["--headless", "--source", "test", "--record", record];
    let caller = spawn_caller(b.path(), &addr, &args, &[]).finish(LIMIT);
    assert_eq!(caller.status.code(), Some(1), "{}", caller.all_output());
    let stderr = caller.stderr.join("\n");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(&recording).unwrap(), b"an earlier call");
    assert!(
        server.accept().is_err(),
        "the caller dialled before checking --record"
    );
}

#[test]
fn an_idle_listener_interrupted_prints_a_summary_and_an_end_event() {
    let (a, _b) = paired_identities();
    let args = ["--headless", "--source", "test", "--stats", "json"];
    let (listener, _addr): (Running, String) = spawn_serving_listener(a.path(), &args, &[]);
    listener.signal("INT");
    let finished = listener.finish(LIMIT);
    assert!(finished.status.success(), "{}", finished.all_output());
    assert!(
        finished.stdout.iter().any(|l| l.contains("\"summary\"")),
        "{}",
        finished.all_output()
    );
    let event = end_event(&finished.stdout);
    assert_eq!(event["ok"], true);
    assert_eq!(event["reason"], "interrupted");
}

#[test]
fn ctrl_c_while_dialling_gives_up_at_once_with_a_summary() {
    let (_a, b) = paired_identities();
    // A port that accepts and then says nothing: the dial would wait for
    // its knock and TLS timeouts.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let args = ["--headless", "--source", "test", "--stats", "json"];
    let mut caller = spawn_caller(b.path(), &addr, &args, &[]);
    caller.wait_for("calling a at", LIMIT);
    caller.signal("INT");
    let caller = caller.finish(LIMIT);
    assert!(caller.status.success(), "{}", caller.all_output());
    let summary: serde_json::Value =
        serde_json::from_str(&caller.stdout[caller.stdout.len() - 2]).expect("JSON summary");
    assert_eq!(summary["event"], "summary", "{}", caller.all_output());
    assert_eq!(summary["end"], "interrupted");
    assert!(summary["duration_s"].as_f64().unwrap() < 5.0, "{summary}");
    let event = end_event(&caller.stdout);
    assert_eq!(event["ok"], true);
    assert_eq!(event["reason"], "interrupted");
}

#[test]
fn ctrl_c_during_the_handshake_hangs_up_at_once_with_a_summary() {
    use vchat::identity::{peers, Identity};
    use vchat::protocol::{ByeReason, Connection, Message, Role};

    let (a, b) = paired_identities();
    let args = ["--headless", "--source", "test", "--stats", "json"];
    let (mut listener, addr) = spawn_serving_listener(a.path(), &args, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Bob's side, in this test: the knock and pinned TLS, then no hello, so
    // the listener stays in the handshake (until its hello timeout).
    let identity = Identity::load(b.path()).unwrap();
    let pin = peers::resolve(b.path(), "a").unwrap();
    let secure = runtime
        .block_on(vchat::net::dial(&addr, &identity, &pin, LIMIT))
        .unwrap();
    listener.wait_for("call from b", LIMIT);
    listener.signal("INT");
    // The listener hangs up on us at once rather than at its hello timeout.
    let bye = runtime.block_on(async {
        let mut conn = Connection::new(secure.stream, Role::Caller);
        loop {
            match conn.read_message().await {
                Ok(Some(Message::Bye(bye))) => return bye,
                Ok(Some(_)) => continue,
                other => panic!("no bye: {other:?}"),
            }
        }
    });
    assert_eq!(bye.reason, ByeReason::Hangup, "{bye:?}");
    let finished = listener.finish(LIMIT);
    assert!(finished.status.success(), "{}", finished.all_output());
    let event = end_event(&finished.stdout);
    assert_eq!(event["reason"], "interrupted", "{}", finished.all_output());
}
