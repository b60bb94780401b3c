//! Helpers shared by the integration tests: running the real `vchat` binary,
//! making throwaway identities, and opening pinned channels on ephemeral ports.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use vchat::identity::{Identity, PinnedPeer};
use vchat::net::{Listener, ListenerOptions, PinSet};

/// A `vchat` command with a clean environment for identity lookups.
pub fn vchat() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vchat"));
    cmd.env_remove("VCHAT_DIR").env("RUST_LOG", "info");
    cmd
}

/// Runs `vchat ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    vchat().args(args).output().expect("run vchat")
}

/// Runs `vchat --dir DIR ARGS`, asserting success, and returns stdout.
pub fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = vchat()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run vchat");
    assert!(
        out.status.success(),
        "vchat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `vchat --dir DIR ARGS`, asserting failure, and returns stderr.
pub fn run_err(dir: &Path, args: &[&str]) -> String {
    let out = vchat()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run vchat");
    assert!(
        !out.status.success(),
        "vchat {args:?} should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh in-memory identity.
pub fn identity(name: &str) -> Identity {
    Identity::generate(name).expect("generate identity")
}

/// The pin for an identity, under `name`.
pub fn pin(identity: &Identity, name: &str) -> PinnedPeer {
    PinnedPeer {
        name: name.to_owned(),
        certificate: identity.certificate().clone(),
    }
}

/// A listener on an ephemeral loopback port pinning `peers`.
pub async fn listen(identity: &Identity, peers: Vec<PinnedPeer>) -> Listener {
    listen_with(identity, peers, ListenerOptions::default()).await
}

/// Like [`listen`], with explicit options.
pub async fn listen_with(
    identity: &Identity,
    peers: Vec<PinnedPeer>,
    options: ListenerOptions,
) -> Listener {
    Listener::bind("127.0.0.1:0", identity, PinSet::new(peers), options)
        .await
        .expect("bind listener")
}

/// An upper bound on any single wait in a test, so a bug shows up as a
/// failure instead of a hung test run. Not a synchronisation mechanism.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Awaits `fut` or fails the test if it takes longer than [`HANG_GUARD`].
pub async fn guard<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {HANG_GUARD:?}"))
}
