//! The identity commands, run as real processes: keygen, id, trust, peers,
//! untrust, and the refusals that protect the private key.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{run_err, run_ok, vchat};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_makes_private_files_even_under_a_permissive_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/identity");
    // Run through a shell so the child really has umask 000.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' keygen --dir '{}' --name 'Alice Example'",
            env!("CARGO_BIN_EXE_vchat"),
            dir.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(mode(&dir), 0o700, "identity dir");
    assert_eq!(mode(&dir.join("key.pem")), 0o600, "private key");
    let key = fs::read_to_string(dir.join("key.pem")).unwrap();
    // Spelled in two pieces so secret scanners do not mistake this file for a key.
    let pkcs8_header = concat!("-----BEGIN PRIV", "ATE KEY-----");
    assert!(key.starts_with(pkcs8_header), "PKCS#8 PEM");
    let cert = fs::read_to_string(dir.join("cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    // No temporary files left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
}

#[test]
fn keygen_prints_fingerprint_and_path_to_share() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(tmp.path(), &["keygen", "--name", "Bob"]);
    assert!(out.contains("Fingerprint (SHA-256): "), "{out}");
    assert!(out.contains("Short fingerprint:"), "{out}");
    assert!(
        out.contains(&tmp.path().join("cert.pem").display().to_string()),
        "{out}"
    );
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), &["keygen", "--name", "first"]);
    let before = fs::read(tmp.path().join("key.pem")).unwrap();
    let err = run_err(tmp.path(), &["keygen", "--name", "second"]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        fs::read(tmp.path().join("key.pem")).unwrap(),
        before,
        "key untouched"
    );

    run_ok(tmp.path(), &["keygen", "--name", "second", "--force"]);
    assert_ne!(
        fs::read(tmp.path().join("key.pem")).unwrap(),
        before,
        "key replaced"
    );
    assert!(run_ok(tmp.path(), &["id"]).contains("second"));
}

#[test]
fn fingerprint_matches_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), &["keygen", "--name", "carol"]);
    let ours = run_ok(tmp.path(), &["id"]);
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(tmp.path().join("cert.pem"))
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(openssl.status.success());
    let openssl = String::from_utf8(openssl.stdout).unwrap();
    let theirs = openssl.trim().rsplit('=').next().unwrap();
    assert_eq!(theirs.len(), 95, "{openssl}");
    assert!(
        ours.contains(&format!("Fingerprint (SHA-256): {theirs}")),
        "ours:\n{ours}\nopenssl: {openssl}"
    );
}

#[test]
fn id_shows_name_paths_validity_and_honours_vchat_dir() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), &["keygen", "--name", "Dora"]);
    let out = vchat()
        .env("VCHAT_DIR", tmp.path())
        .arg("id")
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(out.contains("Name:                  Dora"), "{out}");
    assert!(out.contains("cert.pem"), "{out}");
    assert!(out.contains("Valid:"), "{out}");
    // --dir wins over VCHAT_DIR.
    let other = tempfile::tempdir().unwrap();
    let out = vchat()
        .env("VCHAT_DIR", tmp.path())
        .arg("id")
        .arg("--dir")
        .arg(other.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vchat keygen"));
}

#[test]
fn loading_refuses_a_key_readable_by_others() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), &["keygen"]);
    let key = tmp.path().join("key.pem");
    for loose in [0o640, 0o604, 0o644] {
        fs::set_permissions(&key, fs::Permissions::from_mode(loose)).unwrap();
        let err = run_err(tmp.path(), &["id"]);
        assert!(err.contains(&key.display().to_string()), "{err}");
        assert!(err.contains(&format!("{loose:04o}")), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    run_ok(tmp.path(), &["id"]);
}

#[test]
fn loading_refuses_a_key_that_does_not_match_the_certificate() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run_ok(a.path(), &["keygen"]);
    run_ok(b.path(), &["keygen"]);
    fs::copy(b.path().join("key.pem"), a.path().join("key.pem")).unwrap();
    fs::set_permissions(a.path().join("key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
    let err = run_err(a.path(), &["id"]);
    assert!(err.contains("does not belong to certificate"), "{err}");
}

#[test]
fn trust_peers_untrust_round_trip() {
    let me = tempfile::tempdir().unwrap();
    let friend = tempfile::tempdir().unwrap();
    run_ok(me.path(), &["keygen", "--name", "me"]);
    run_ok(friend.path(), &["keygen", "--name", "Friend Person"]);
    let friend_cert = friend.path().join("cert.pem");
    let friend_id = run_ok(friend.path(), &["id"]);
    let fingerprint = friend_id
        .lines()
        .find_map(|l| l.strip_prefix("Fingerprint (SHA-256): "))
        .unwrap()
        .to_owned();

    assert!(run_ok(me.path(), &["peers"]).contains("No trusted peers"));
    let out = run_ok(
        me.path(),
        &["trust", friend_cert.to_str().unwrap(), "--name", "friend"],
    );
    assert!(
        out.contains(&fingerprint),
        "trust prints the fingerprint: {out}"
    );
    assert!(out.contains("compare"), "trust asks to compare: {out}");
    assert!(me.path().join("peers/friend.pem").exists());

    let listed = run_ok(me.path(), &["peers"]);
    assert!(
        listed.contains("friend") && listed.contains(&fingerprint),
        "{listed}"
    );
    assert!(listed.contains("Friend Person"), "{listed}");

    // Same name again, or the same certificate under another name: refused.
    let err = run_err(
        me.path(),
        &["trust", friend_cert.to_str().unwrap(), "--name", "friend"],
    );
    assert!(
        err.contains("already trusted") && err.contains("--force"),
        "{err}"
    );
    let err = run_err(
        me.path(),
        &["trust", friend_cert.to_str().unwrap(), "--name", "alias"],
    );
    assert!(err.contains("already trusted as \"friend\""), "{err}");
    run_ok(
        me.path(),
        &[
            "trust",
            friend_cert.to_str().unwrap(),
            "--name",
            "friend",
            "--force",
        ],
    );

    let out = run_ok(me.path(), &["untrust", "friend"]);
    assert!(out.contains("Removed"), "{out}");
    assert!(!me.path().join("peers/friend.pem").exists());
    assert!(run_ok(me.path(), &["peers"]).contains("No trusted peers"));
    let err = run_err(me.path(), &["untrust", "friend"]);
    assert!(err.contains("no trusted peer named \"friend\""), "{err}");
}

#[test]
fn trust_rejects_files_that_are_not_a_certificate() {
    let me = tempfile::tempdir().unwrap();
    run_ok(me.path(), &["keygen"]);
    let junk = me.path().join("junk.pem");
    fs::write(&junk, b"hello, not a certificate\n").unwrap();
    let err = run_err(me.path(), &["trust", junk.to_str().unwrap(), "--name", "x"]);
    assert!(
        err.contains("no '-----BEGIN CERTIFICATE-----' block"),
        "{err}"
    );

    let key = me.path().join("key.pem");
    let err = run_err(me.path(), &["trust", key.to_str().unwrap(), "--name", "x"]);
    assert!(err.contains("PRIVATE KEY"), "{err}");

    let bad_der = me.path().join("bad.pem");
    fs::write(
        &bad_der,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = run_err(
        me.path(),
        &["trust", bad_der.to_str().unwrap(), "--name", "x"],
    );
    assert!(err.contains("not a valid X.509 certificate"), "{err}");

    let missing = me.path().join("missing.pem");
    let err = run_err(
        me.path(),
        &["trust", missing.to_str().unwrap(), "--name", "x"],
    );
    assert!(err.contains("missing.pem"), "{err}");

    let cert = me.path().join("cert.pem");
    for bad_name in ["../escape", ".hidden", "a/b", "", "-dash"] {
        let name_arg = format!("--name={bad_name}");
        let err = run_err(me.path(), &["trust", cert.to_str().unwrap(), &name_arg]);
        assert!(err.contains("invalid peer name"), "{bad_name:?}: {err}");
    }
    assert!(
        !me.path().join("peers").exists()
            || fs::read_dir(me.path().join("peers")).unwrap().count() == 0
    );
}

#[test]
fn keygen_rejects_unusable_names() {
    let tmp = tempfile::tempdir().unwrap();
    let err = run_err(tmp.path(), &["keygen", "--name", "   "]);
    assert!(err.contains("invalid display name"), "{err}");
    let long = "x".repeat(65);
    let err = run_err(tmp.path(), &["keygen", "--name", &long]);
    assert!(
        err.contains("is 65 bytes in UTF-8; the limit is 64 bytes"),
        "{err}"
    );
    assert!(!tmp.path().join("key.pem").exists());
}

#[test]
fn trust_explains_empty_multiple_oversized_and_non_file_certificates() {
    let me = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    run_ok(me.path(), &["keygen", "--name", "me"]);
    run_ok(other.path(), &["keygen", "--name", "other"]);
    let mine = fs::read_to_string(me.path().join("cert.pem")).unwrap();
    let theirs = fs::read_to_string(other.path().join("cert.pem")).unwrap();
    let file = |name: &str, contents: &[u8]| {
        let path = me.path().join(name);
        fs::write(&path, contents).unwrap();
        path
    };
    let cases = [
        (
            file("empty.pem", b""),
            "no '-----BEGIN CERTIFICATE-----' block",
        ),
        (
            file("two.pem", format!("{mine}{theirs}").as_bytes()),
            "it holds 2 certificates; a vchat identity is exactly one",
        ),
        (
            file("big.pem", &vec![b'A'; 100 * 1024]),
            "larger than any certificate",
        ),
        (
            file("binary.pem", &[0xff, 0xfe, 0x00, 0x80, 0x01]),
            "no '-----BEGIN CERTIFICATE-----' block",
        ),
        (
            file(
                "broken.pem",
                b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
            ),
            "malformed PEM",
        ),
        (me.path().to_owned(), "not a regular file"),
    ];
    for (path, expected) in &cases {
        let err = run_err(me.path(), &["trust", path.to_str().unwrap(), "--name", "x"]);
        assert!(err.contains(expected), "{}: {err}", path.display());
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!me.path().join("peers/x.pem").exists());

    // The same files given to `--peer` are refused before anything listens.
    let two = me.path().join("two.pem");
    let err = run_err(
        me.path(),
        &[
            "listen",
            "--bind",
            "127.0.0.1:0",
            "--headless",
            "--peer",
            two.to_str().unwrap(),
        ],
    );
    assert!(err.contains("2 certificates"), "{err}");
    let err = run_err(
        me.path(),
        &["call", "127.0.0.1:9", "--headless", "--peer", "nobody"],
    );
    assert!(err.contains("no trusted peer named \"nobody\""), "{err}");
}

/// Runs `vchat --dir DIR ARGS` with `input` on its standard input.
fn run_with_stdin(dir: &std::path::Path, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = vchat()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn trust_reads_the_certificate_from_stdin_and_takes_its_name() {
    let me = tempfile::tempdir().unwrap();
    let friend = tempfile::tempdir().unwrap();
    run_ok(me.path(), &["keygen", "--name", "me"]);
    run_ok(friend.path(), &["keygen", "--name", "friend.example"]);
    let pem = fs::read(friend.path().join("cert.pem")).unwrap();
    let out = run_with_stdin(me.path(), &["trust", "-"], &pem);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Trusted \"friend.example\""), "{stdout}");
    let friend_fp = run_ok(friend.path(), &["id"]);
    let friend_fp = friend_fp
        .lines()
        .find(|l| l.starts_with("Fingerprint"))
        .unwrap()
        .to_owned();
    let fingerprint = friend_fp.rsplit(' ').next().unwrap();
    assert!(stdout.contains(fingerprint), "{stdout}");
    assert_eq!(
        fs::read(me.path().join("peers/friend.example.pem")).unwrap(),
        pem,
        "pinned under the certificate's own name"
    );
    let peers = run_ok(me.path(), &["peers"]);
    assert!(peers.starts_with("friend.example\n"), "{peers}");

    // Not a certificate on stdin: the error names the source.
    let out = run_with_stdin(me.path(), &["trust", "-", "--name", "x"], b"hello\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("standard input"), "{err}");
    assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
}

#[test]
fn trust_asks_for_a_name_when_the_certificates_own_cannot_be_one() {
    let me = tempfile::tempdir().unwrap();
    let friend = tempfile::tempdir().unwrap();
    run_ok(me.path(), &["keygen", "--name", "me"]);
    run_ok(friend.path(), &["keygen", "--name", "Friend Person"]);
    let cert = friend.path().join("cert.pem");
    let err = run_err(me.path(), &["trust", cert.to_str().unwrap()]);
    assert!(err.contains("\"Friend Person\""), "{err}");
    assert!(err.contains("--name"), "{err}");
    assert!(!me.path().join("peers").exists(), "nothing pinned");
    let out = run_ok(
        me.path(),
        &["trust", cert.to_str().unwrap(), "--name", "friend"],
    );
    assert!(out.contains("Trusted \"friend\""), "{out}");
}

#[test]
fn trust_refuses_your_own_certificate() {
    let me = tempfile::tempdir().unwrap();
    run_ok(me.path(), &["keygen", "--name", "me"]);
    let own = me.path().join("cert.pem");
    // A copy elsewhere is still our own certificate.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("alice.pem");
    fs::copy(&own, &copy).unwrap();
    for path in [&own, &copy] {
        let err = run_err(me.path(), &["trust", path.to_str().unwrap(), "--name", "x"]);
        assert!(err.contains("your own certificate"), "{err}");
        assert!(err.contains("peer's cert.pem"), "{err}");
    }
    let out = run_with_stdin(me.path(), &["trust", "-"], &fs::read(&own).unwrap());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("your own certificate"));
    assert!(!me.path().join("peers").exists(), "nothing pinned");
}

#[test]
fn id_works_from_the_certificate_alone() {
    let full = tempfile::tempdir().unwrap();
    run_ok(full.path(), &["keygen", "--name", "Alice"]);
    let with_key = run_ok(full.path(), &["id"]);
    assert!(!with_key.contains("Private key"), "{with_key}");

    let cert_only = tempfile::tempdir().unwrap();
    fs::copy(
        full.path().join("cert.pem"),
        cert_only.path().join("cert.pem"),
    )
    .unwrap();
    let out = run_ok(cert_only.path(), &["id"]);
    assert!(out.contains("Name:                  Alice"), "{out}");
    let fingerprint = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Fingerprint"))
            .map(str::to_owned)
    };
    assert_eq!(fingerprint(&out), fingerprint(&with_key));
    assert!(out.contains("Private key:           missing"), "{out}");

    let empty = tempfile::tempdir().unwrap();
    let err = run_err(empty.path(), &["id"]);
    assert!(err.contains("vchat keygen"), "{err}");
}
