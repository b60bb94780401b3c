//! Display names have one limit, the protocol's: MAX_DISPLAY_NAME_LEN bytes of
//! UTF-8, no control characters. It is checked where a name enters vchat
//! (`keygen --name`, the name inside a certificate given to `trust`, and
//! `--name` of listen/call/demo), with an error that gives the byte count, and
//! a name exactly at the limit makes a working call.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{run_err, run_in, run_ok, spawn_caller, spawn_listener};
use vchat::protocol::limits::MAX_DISPLAY_NAME_LEN;

/// A name of `bytes` UTF-8 bytes made of 2-byte Cyrillic letters (plus one
/// ASCII letter when `bytes` is odd).
fn cyrillic_name(bytes: usize) -> String {
    let mut name = "Ж".repeat(bytes / 2);
    if bytes % 2 == 1 {
        name.insert(0, 'a');
    }
    assert_eq!(name.len(), bytes);
    name
}

/// What every refusal of a too-long name says, for a name of `bytes` bytes.
fn limit_message(bytes: usize) -> String {
    format!(
        "is {bytes} bytes in UTF-8; the limit is {MAX_DISPLAY_NAME_LEN} bytes, \
         about {} Cyrillic or {} CJK characters",
        MAX_DISPLAY_NAME_LEN / 2,
        MAX_DISPLAY_NAME_LEN / 3
    )
}

fn wait_limit() -> Duration {
    Duration::from_secs(60)
}

#[test]
fn keygen_counts_the_name_in_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    // 40 Cyrillic letters: 40 characters but 80 bytes, which every call's
    // hello would carry and every peer would refuse.
    let forty = "Ж".repeat(40);
    let err = run_err(tmp.path(), &["keygen", "--name", &forty]);
    assert!(err.contains(&limit_message(80)), "{err}");
    assert!(!tmp.path().join("key.pem").exists(), "nothing written");

    let err = run_err(
        tmp.path(),
        &["keygen", "--name", &cyrillic_name(MAX_DISPLAY_NAME_LEN + 1)],
    );
    assert!(
        err.contains(&limit_message(MAX_DISPLAY_NAME_LEN + 1)),
        "{err}"
    );

    let err = run_err(tmp.path(), &["keygen", "--name", "tab\there"]);
    assert!(err.contains("control character '\\t'"), "{err}");
    assert!(!tmp.path().join("key.pem").exists(), "nothing written");
}

#[test]
fn a_name_of_exactly_the_limit_is_accepted_and_makes_a_working_call() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let a_name = cyrillic_name(MAX_DISPLAY_NAME_LEN);
    let b_name = cyrillic_name(MAX_DISPLAY_NAME_LEN - 1) + "b";
    run_ok(a.path(), &["keygen", "--name", &a_name]);
    run_ok(b.path(), &["keygen", "--name", &b_name]);
    assert!(run_ok(a.path(), &["id"]).contains(&a_name));
    let (a_cert, b_cert) = (a.path().join("cert.pem"), b.path().join("cert.pem"));
    run_ok(
        a.path(),
        &["trust", b_cert.to_str().unwrap(), "--name", "b"],
    );
    run_ok(
        b.path(),
        &["trust", a_cert.to_str().unwrap(), "--name", "a"],
    );
    // Over one byte, the same letters are refused (the boundary is exact).
    let err = run_err(
        a.path(),
        &[
            "keygen",
            "--force",
            "--name",
            &cyrillic_name(MAX_DISPLAY_NAME_LEN + 1),
        ],
    );
    assert!(
        err.contains(&limit_message(MAX_DISPLAY_NAME_LEN + 1)),
        "{err}"
    );

    // Each side's hello carries its 64-byte certificate name; the caller
    // also passes it as --name, which takes the same parser.
    let call = ["--source", "test", "--headless", "--frames", "5"];
    let (listener, addr) = spawn_listener(a.path(), &call, &[]);
    let mut caller_args = call.to_vec();
    caller_args.extend(["--name", &b_name]);
    let caller = spawn_caller(b.path(), &addr, &caller_args, &[]);
    let caller = caller.finish(wait_limit());
    let listener = listener.finish(wait_limit());
    assert!(caller.status.success(), "{}", caller.all_output());
    assert!(listener.status.success(), "{}", listener.all_output());
    // Each side logged the other's display name from its hello.
    assert!(
        listener.all_output().contains(&b_name),
        "{}",
        listener.all_output()
    );
    assert!(
        caller.all_output().contains(&a_name),
        "{}",
        caller.all_output()
    );
}

/// A self-signed certificate whose subject name is `name` (as another program,
/// or an older vchat, could have made), written to `path`.
fn write_cert_named(path: &Path, name: &str) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, name);
    params.distinguished_name = subject;
    fs::write(path, params.self_signed(&key).unwrap().pem()).unwrap();
}

#[test]
fn trust_refuses_a_certificate_whose_name_peers_would_refuse() {
    let me = tempfile::tempdir().unwrap();
    run_ok(me.path(), &["keygen", "--name", "me"]);
    let long = me.path().join("long.pem");
    write_cert_named(&long, &"Ж".repeat(40));
    let err = run_err(
        me.path(),
        &["trust", long.to_str().unwrap(), "--name", "olga"],
    );
    assert!(err.contains("long.pem"), "names the file: {err}");
    assert!(err.contains(&limit_message(80)), "{err}");
    assert!(err.contains("vchat keygen --force --name"), "{err}");

    let control = me.path().join("control.pem");
    write_cert_named(&control, "bell\u{7}");
    let err = run_err(
        me.path(),
        &["trust", control.to_str().unwrap(), "--name", "bell"],
    );
    assert!(err.contains("control character"), "{err}");
    assert!(!me.path().join("peers/olga.pem").exists());
    assert!(!me.path().join("peers/bell.pem").exists());

    // Exactly at the limit is fine.
    let at_limit = me.path().join("at_limit.pem");
    write_cert_named(&at_limit, &cyrillic_name(MAX_DISPLAY_NAME_LEN));
    run_ok(
        me.path(),
        &["trust", at_limit.to_str().unwrap(), "--name", "olga"],
    );

    // The help says which rule applies to which argument.
    let help = run_ok(me.path(), &["trust", "--help"]);
    assert!(help.contains("display-name rule applies to it"), "{help}");
    assert!(help.contains("display-name rule does not apply"), "{help}");
}

#[test]
fn name_of_listen_call_and_demo_is_checked_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "Ж".repeat(40);
    let commands: [&[&str]; 3] = [
        &[
            "listen",
            "--bind",
            "127.0.0.1:0",
            "--peer",
            "x",
            "--headless",
        ],
        &["call", "127.0.0.1:9", "--peer", "x", "--headless"],
        &["demo", "--headless", "--source", "test", "--frames", "1"],
    ];
    for command in commands {
        for (bad, expected) in [
            (long.as_str(), limit_message(80)),
            ("a\nb", "control character '\\n'".to_owned()),
        ] {
            let mut args = command.to_vec();
            args.extend(["--name", bad]);
            let out = run_in(tmp.path(), &args);
            let err = String::from_utf8_lossy(&out.stderr);
            // Exit status 2: a usage error reported by the argument parser,
            // before any identity is loaded or socket opened.
            assert_eq!(out.status.code(), Some(2), "{command:?}: {err}");
            assert!(err.contains("--name"), "{command:?}: {err}");
            assert!(err.contains(&expected), "{command:?}: {err}");
        }
    }
}
