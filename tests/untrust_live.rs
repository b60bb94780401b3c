//! A running listener reads its pins for every new connection: `vchat
//! untrust` refuses the peer's next connection at once, and `vchat trust`
//! (a new certificate under the same name) lets it in, without restarting.
//!
//! `vchat listen` serves one call and then exits, so the refusal is shown
//! before any call: start the listener, untrust b, b's call is refused while
//! the listener keeps waiting; trust b again, b's call works.

mod common;

use std::fs;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use common::{guard, identity, paired_identities, pin, run_ok, spawn_caller, spawn_listener};
use vchat::identity::{Identity, PinnedPeer};
use vchat::net::{dial, Listener, ListenerOptions, NetError, PinSet};

fn wait_limit() -> Duration {
    Duration::from_secs(60)
}

const CALL: [&str; 5] = ["--source", "test", "--headless", "--frames", "3"];

#[test]
fn untrust_and_trust_take_effect_on_a_running_listener() {
    let (a, b) = paired_identities();
    let (mut listener, addr) = spawn_listener(a.path(), &CALL, &[]);

    let out = run_ok(a.path(), &["untrust", "b"]);
    assert!(out.contains("Removed"), "{out}");
    let refused = spawn_caller(b.path(), &addr, &CALL, &[]).finish(wait_limit());
    assert!(!refused.status.success(), "{}", refused.all_output());
    let said = refused.all_output();
    assert!(
        said.contains("refused our certificate") && said.contains("vchat trust"),
        "the caller is told it is not pinned: {said}"
    );
    // The listener logged the refusal, naming the unpinned certificate...
    let line = listener.wait_for("is not pinned", wait_limit());
    assert!(line.contains("refused connection"), "{line}");
    // ...and is still waiting for a call.
    assert!(
        listener.child.try_wait().unwrap().is_none(),
        "listener exited after a refusal"
    );

    // b makes a new identity; a pins the new certificate under the old name.
    run_ok(b.path(), &["keygen", "--force", "--name", "Bob again"]);
    let b_cert = b.path().join("cert.pem");
    run_ok(
        a.path(),
        &["trust", b_cert.to_str().unwrap(), "--name", "b"],
    );
    let caller = spawn_caller(b.path(), &addr, &CALL, &[]).finish(wait_limit());
    let listener = listener.finish(wait_limit());
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());
}

/// Pins `peer` as `name` in the identity directory `dir`, as `vchat trust` does.
fn trust(dir: &std::path::Path, peer: &Identity, name: &str) {
    let file = dir.join(format!("{name}-cert.pem"));
    fs::write(&file, peer.certificate().to_pem()).unwrap();
    run_ok(
        dir,
        &["trust", file.to_str().unwrap(), "--name", name, "--force"],
    );
}

async fn connect(
    listener: &mut Listener,
    listener_id: &Identity,
    caller: &Identity,
) -> Result<PinnedPeer, NetError> {
    let addr = listener.local_addr().to_string();
    let listener_pin = pin(listener_id, "listener");
    let mut dialed = dial(&addr, caller, &listener_pin, Duration::from_secs(10)).await?;
    // TLS 1.3: the listener's verdict on our certificate comes with the
    // first read (the listener sends nothing on success, so only a refusal
    // ends the read).
    let mut byte = [0u8; 1];
    let accepted = tokio::select! {
        accepted = guard("accept", listener.accept()) => accepted,
        read = dialed.stream.read(&mut byte) => {
            let e = read.expect_err("the listener sends no data");
            return Err(vchat::net::classify(dialed.remote, e));
        }
    };
    Ok(accepted.expect("listener alive").peer)
}

#[tokio::test]
async fn a_live_pin_set_follows_the_peers_folder_connection_by_connection() {
    let dir = tempfile::tempdir().unwrap();
    let me = identity("me");
    let (bob, bob2) = (identity("bob"), identity("bob, new key"));
    trust(dir.path(), &bob, "b");
    let pins = PinSet::live(dir.path(), &["b".to_owned()]).expect("b resolves");
    assert_eq!(pins.peers().len(), 1);
    let mut listener = Listener::bind("127.0.0.1:0", &me, pins.clone(), ListenerOptions::default())
        .await
        .unwrap();

    let peer = connect(&mut listener, &me, &bob).await.expect("bob pinned");
    assert_eq!(peer.name, "b");

    // Untrusted: refused, and `find` no longer knows the fingerprint either.
    run_ok(dir.path(), &["untrust", "b"]);
    let err = connect(&mut listener, &me, &bob)
        .await
        .expect_err("bob untrusted");
    assert!(matches!(err, NetError::RejectedByPeer { .. }), "{err}");
    assert!(pins.find(&bob.certificate().fingerprint()).is_none());

    // A new certificate under the same name: it gets in, the old one does not.
    trust(dir.path(), &bob2, "b");
    assert_eq!(
        connect(&mut listener, &me, &bob2)
            .await
            .expect("bob2 pinned")
            .name,
        "b"
    );
    connect(&mut listener, &me, &bob)
        .await
        .expect_err("bob's old key");

    // An unreadable pin file is "not pinned", not a crash of the listener.
    fs::write(dir.path().join("peers/b.pem"), b"garbage").unwrap();
    connect(&mut listener, &me, &bob2)
        .await
        .expect_err("invalid pin file");
    trust(dir.path(), &bob2, "b");
    let found = pins
        .find(&bob2.certificate().fingerprint())
        .expect("pinned again");
    assert_eq!(found.name, "b");
    connect(&mut listener, &me, &bob2)
        .await
        .expect("pinned again");
}
