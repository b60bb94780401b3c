//! `vchat listen` keeps serving (issue 12): a listener process takes three
//! calls in a row from real caller processes on loopback, prints each
//! call's summary as it ends, and stops with a summary of its own on Ctrl-C.

mod common;

use std::time::{Duration, Instant};

use common::{paired_identities, spawn_caller, spawn_serving_listener};

/// Hang guard for one call.
const CALL_LIMIT: Duration = Duration::from_secs(60);

const CALLS: usize = 3;

#[test]
fn a_listener_serves_three_calls_in_a_row_then_stops_on_ctrl_c() {
    let (a, b) = paired_identities();
    let media = ["--headless", "--source", "test", "--size", "160x120"];
    let mut listener_args = media.to_vec();
    listener_args.extend(["--stats", "json"]);
    let (mut listener, addr) = spawn_serving_listener(a.path(), &listener_args, &[]);
    let started = Instant::now();
    for n in 1..=CALLS {
        let mut caller_args = media.to_vec();
        caller_args.extend(["--frames", "10"]);
        let caller = spawn_caller(b.path(), &addr, &caller_args, &[]).finish(CALL_LIMIT);
        assert!(caller.status.success(), "call {n}: {}", caller.all_output());
        let line = listener.wait_for("\"summary\"", CALL_LIMIT);
        let summary: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(summary["peer"], "b", "call {n}: {line}");
        assert!(
            summary["end"].as_str().unwrap().starts_with("peer hung up"),
            "call {n}: {line}"
        );
        assert!(
            summary["frames_in"].as_u64().unwrap() > 0,
            "call {n} carried video: {line}"
        );
        assert!(
            listener.child.try_wait().unwrap().is_none(),
            "the listener is still serving after call {n}"
        );
    }
    println!(
        "listener served {CALLS} calls of 10 frames in {:?}",
        started.elapsed()
    );
    listener.signal("INT");
    let finished = listener.finish(CALL_LIMIT);
    assert!(finished.status.success(), "{}", finished.all_output());
    let last = finished
        .stdout
        .iter()
        .rev()
        .find(|l| l.contains("\"summary\""))
        .unwrap_or_else(|| panic!("no summary at Ctrl-C: {}", finished.all_output()));
    assert!(last.contains("interrupted"), "{last}");
    assert!(last.contains("after 3 calls"), "{last}");
    assert!(
        finished
            .stdout
            .last()
            .is_some_and(|l| l.contains("\"event\":\"end\"")),
        "the last line is the end event: {}",
        finished.all_output()
    );
}
