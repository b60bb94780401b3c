//! A real `vchat listen` process facing what the internet sends it: plain
//! TCP garbage, a TLS 1.2-only client, an unpinned caller, a caller that
//! pinned the wrong certificate. Strangers without a valid knock receive not
//! one byte (one debug log line each); an unpinned caller that knows the
//! listener's certificate is refused by TLS and told why; a caller with the
//! wrong pin is told what the silence can mean; and the listener still takes
//! the pinned peer's call afterwards. The listener runs with its real
//! timings (knock deadline 3 s, then silence for 1-8 s).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{paired_identities, run_err, run_ok, spawn_caller, spawn_listener};

#[test]
fn refusals_are_logged_and_the_listener_still_takes_the_real_call() {
    let (a, b) = paired_identities();
    let (mut listener, addr) = spawn_listener(
        a.path(),
        &[
            "--headless",
            "--source",
            "test",
            "--size",
            "160x120",
            "--frames",
            "10",
        ],
        // Ignored strangers are logged at debug level only.
        &[("RUST_LOG", "info,vchat=debug")],
    );

    // Plain TCP garbage (an HTTP request): not one byte back, closed after
    // the knock deadline and a random delay, with a log line.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let closed = tcp.read_to_end(&mut sink);
    assert!(
        closed.is_ok(),
        "closed by the listener, not timed out: {closed:?}"
    );
    assert!(sink.is_empty(), "the listener sent {} bytes", sink.len());
    listener.wait_for(
        "ignoring connection silently: no valid knock",
        Duration::from_secs(20),
    );

    // A TLS 1.2-only client: gets nothing either.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-tls1_2"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("has read 0 bytes"), "{text}");

    // An unpinned caller with its own identity: told it was refused, and the
    // listener logs the fingerprint it presented.
    let mallory = tempfile::tempdir().unwrap();
    run_ok(mallory.path(), &["keygen", "--name", "Mallory"]);
    let a_cert = a.path().join("cert.pem");
    let err = run_err(
        mallory.path(),
        &[
            "call",
            &addr,
            "--peer",
            a_cert.to_str().unwrap(),
            "--headless",
            "--source",
            "test",
        ],
    );
    assert!(err.contains("refused our certificate"), "{err}");
    assert!(err.contains("vchat trust"), "{err}");
    let id = run_ok(mallory.path(), &["id"]);
    let mallory_short = id
        .lines()
        .find_map(|l| l.strip_prefix("Short fingerprint:"))
        .unwrap()
        .trim()
        .to_owned();
    let line = listener.wait_for("is not pinned", Duration::from_secs(20));
    assert!(line.contains(&mallory_short), "{line}");

    // A caller who pinned the wrong certificate for this address knocks
    // with the wrong key: the listener stays silent, and the caller is told
    // what that silence can mean.
    let b_cert = b.path().join("cert.pem");
    let err = run_err(
        b.path(),
        &[
            "call",
            &addr,
            "--peer",
            b_cert.to_str().unwrap(),
            "--headless",
            "--source",
            "test",
        ],
    );
    assert!(err.contains("never answered"), "{err}");
    assert!(err.contains("certificate you pinned"), "{err}");
    assert!(err.contains("2 minutes"), "{err}");

    // The pinned peer still gets through.
    let caller = spawn_caller(
        b.path(),
        &addr,
        &["--headless", "--source", "test", "--size", "160x120"],
        &[],
    );
    let caller = caller.finish(Duration::from_secs(60));
    let listener = listener.finish(Duration::from_secs(60));
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());
}
