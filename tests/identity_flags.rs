//! `--frames 0` of listen, call and demo: it would mean "hang up after no
//! frames", a condition that never triggers, so the call ran forever. It is
//! refused when the arguments are parsed, with an error that says what to do.

mod common;

use common::run_in;

#[test]
fn frames_zero_is_refused_at_parse_time_by_listen_call_and_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 3] = [
        &["listen", "--bind", "127.0.0.1:0", "--peer", "x"],
        &["call", "127.0.0.1:9", "--peer", "x"],
        // --duration bounds the run should --frames 0 ever be accepted.
        &["demo", "--source", "test", "--headless", "--duration", "3"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.extend(["--frames", "0"]);
        let out = run_in(tmp.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{command:?}: usage error: {err}"
        );
        assert!(
            err.contains("--frames must be at least 1; to run until you hang up, leave it out"),
            "{command:?}: {err}"
        );
    }
    // Not a number: still a clear parse error, not a panic.
    let out = run_in(
        tmp.path(),
        &["call", "127.0.0.1:9", "--peer", "x", "--frames", "ten"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--frames"), "{err}");
    // 1 is accepted by the parser (the command then fails later, for lack of
    // an identity, with exit status 1).
    let out = run_in(
        tmp.path(),
        &["call", "127.0.0.1:9", "--peer", "x", "--frames", "1"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
