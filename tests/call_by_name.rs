//! `vchat trust --address` keeps where a peer is reached next to its pinned
//! certificate, so `vchat call NAME` dials it; every way this can go wrong
//! says what to do instead. The call itself is real: two processes over
//! loopback.

mod common;

use std::time::Duration;

use common::{paired_identities, run_err, run_ok, spawn_listener, Running};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_stored_address_is_shown_kept_on_renewal_and_removed_with_the_peer() {
    let (a, b) = paired_identities();
    let a_cert = a.path().join("cert.pem");
    let cert = a_cert.to_str().unwrap();
    let onion = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion";
    let out = run_ok(
        b.path(),
        &["trust", cert, "--name", "a", "--address", onion, "--force"],
    );
    assert!(out.contains(&format!("Address: {onion}")), "{out}");
    assert!(out.contains("vchat call a"), "{out}");
    let peers = run_ok(b.path(), &["peers"]);
    assert!(
        peers.contains(&format!("address:          {onion}")),
        "{peers}"
    );

    // Trusting the certificate again (renewed) without --address keeps it.
    run_ok(b.path(), &["trust", cert, "--name", "a", "--force"]);
    assert!(run_ok(b.path(), &["peers"]).contains(onion));

    // A bad address is refused before anything is written.
    for bad in ["host:notaport", "", "two words"] {
        let err = run_err(
            b.path(),
            &["trust", cert, "--name", "c", "--address", bad, "--force"],
        );
        assert!(
            err.contains("--address") || err.contains("cannot be stored as an address"),
            "{bad:?}: {err}"
        );
    }
    assert!(
        !b.path().join("peers/c.pem").exists(),
        "no pin without its address"
    );

    run_ok(b.path(), &["untrust", "a"]);
    assert!(
        !b.path().join("peers/a.address").exists(),
        "the address went with the peer"
    );
}

#[test]
fn call_by_name_dials_the_stored_address() {
    let (a, b) = paired_identities();
    let media = [
        "--headless",
        "--source",
        "test",
        "--size",
        "160x120",
        "--frames",
        "5",
    ];
    let (listener, addr) = spawn_listener(a.path(), &media, &[]);
    common::trust_a_at(b.path(), a.path(), &addr);
    let dir = b.path().to_str().unwrap();
    let mut args = vec!["--dir", dir, "call", "a"];
    args.extend(media);
    let caller = Running::spawn(&args, &[]).finish(LIMIT);
    let listener = listener.finish(LIMIT);
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());
    assert!(
        caller
            .stderr
            .iter()
            .any(|l| l.contains(&format!("calling a at {addr}"))),
        "the stored address was dialled: {}",
        caller.all_output()
    );
}

#[test]
fn call_without_peer_says_what_is_missing() {
    let (_a, b) = paired_identities();
    // A trusted peer with no stored address.
    let err = run_err(b.path(), &["call", "a", "--headless", "--source", "test"]);
    assert!(
        err.contains("a has no stored address") && err.contains("--address"),
        "{err}"
    );
    // An address, but no --peer to say whom to expect there.
    let err = run_err(
        b.path(),
        &["call", "192.0.2.7:7878", "--headless", "--source", "test"],
    );
    assert!(
        err.contains("not a trusted peer's name") && err.contains("--peer NAME"),
        "{err}"
    );
    assert!(err.contains("trusted peers: a"), "{err}");
}
