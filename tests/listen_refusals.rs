//! A real `vchat listen` process facing what the internet sends it: plain
//! TCP garbage, a TLS 1.2-only client, an unpinned caller. Each is refused
//! with one log line naming what happened, the caller is told why, and the
//! listener still takes the pinned peer's call afterwards.

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
        &[],
    );

    // Plain TCP garbage (an HTTP request): closed, with a log line.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = tcp.read_to_end(&mut sink);
    listener.wait_for("not TLS", Duration::from_secs(20));

    // A TLS 1.2-only client: refused, with a log line.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-tls1_2"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(!out.status.success());
    listener.wait_for("not a TLS 1.3 vchat peer", Duration::from_secs(20));

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

    // A caller who pinned the wrong certificate for this address is told
    // what it got and what it expected.
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
    assert!(err.contains("not the one you pinned"), "{err}");
    assert!(err.contains("expected"), "{err}");

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
