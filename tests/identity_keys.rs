//! The private key file: `vchat keygen` writes PKCS#8 v1 (RFC 5208), the
//! form `openssl genpkey -algorithm ed25519` writes, so the system's openssl
//! (and Python's `ssl`/`cryptography`) can load it; identities written by
//! older vchat (PKCS#8 v2, public key inside) still load and sign; and no
//! error about a key repeats the key.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{guard, listen, pin, run_err, run_ok};
use vchat::identity::Identity;
use vchat::net::dial;

/// DER length of an Ed25519 PKCS#8 v1 key: 16 bytes of structure, 32 of seed.
const ED25519_PKCS8_V1_LEN: usize = 48;

/// The DER inside a PEM file with one "PRIVATE KEY" block.
fn key_der(path: &Path) -> Vec<u8> {
    let pem = pem::parse(fs::read(path).unwrap()).expect("key.pem is PEM");
    assert_eq!(pem.tag(), "PRIVATE KEY", "PKCS#8 PEM label");
    pem.contents().to_vec()
}

/// Runs the system's openssl, failing the test with its stderr if it fails.
fn openssl(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn keygen_writes_a_pkcs8_v1_key_that_openssl_loads_and_matches_the_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), &["keygen", "--name", "Olga"]);
    let key = tmp.path().join("key.pem");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Byte for byte the shape openssl itself writes for a new Ed25519 key.
    let ours = key_der(&key);
    let reference = tmp.path().join("reference.der");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ed25519",
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&reference)
        .status()
        .expect("openssl must be installed");
    assert!(status.success());
    let reference = fs::read(&reference).unwrap();
    assert_eq!(reference.len(), ED25519_PKCS8_V1_LEN, "openssl's own form");
    assert_eq!(ours.len(), ED25519_PKCS8_V1_LEN, "v1: no public key inside");
    assert_eq!(ours[..16], reference[..16], "same structure, version 0");

    // openssl loads it and derives the certificate's public key from it.
    let from_key = openssl(&["pkey", "-pubout", "-in"], &key);
    let from_cert = openssl(
        &["x509", "-noout", "-pubkey", "-in"],
        &tmp.path().join("cert.pem"),
    );
    assert!(
        from_key.contains("-----BEGIN PUBLIC KEY-----"),
        "{from_key}"
    );
    assert_eq!(from_key, from_cert, "key.pem belongs to cert.pem");
    // And vchat itself loads what it wrote (the key/certificate match check).
    assert!(run_ok(tmp.path(), &["id"]).contains("Olga"));
}

/// Writes an identity exactly as vchat did before keys became PKCS#8 v1:
/// rcgen's Ed25519 key (ring's PKCS#8 v2 document) and a self-signed
/// certificate, files 0600 and 0644.
fn write_v2_identity(dir: &Path, name: &str) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, name);
    params.distinguished_name = subject;
    let cert = params.self_signed(&key).unwrap();
    fs::create_dir_all(dir).unwrap();
    let key_path = dir.join("key.pem");
    fs::write(&key_path, key.serialize_pem()).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    let der = key_der(&key_path);
    // SEQUENCE, INTEGER 1: version 2 (RFC 5958), with the public key.
    assert_eq!(der[2..5], [0x02, 0x01, 0x01], "this is a v2 key");
    assert!(der.len() > ED25519_PKCS8_V1_LEN);
}

#[tokio::test]
async fn a_pkcs8_v2_key_from_older_vchat_still_loads_and_signs_handshakes() {
    let tmp = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (tmp.path().join("old"), tmp.path().join("new"));
    write_v2_identity(&old_dir, "Old Timer");
    run_ok(&new_dir, &["keygen", "--name", "Newcomer"]);
    assert!(run_ok(&old_dir, &["id"]).contains("Old Timer"));

    // Each side signs a TLS 1.3 CertificateVerify with its key: the v2 key
    // as the listener, the v1 key as the caller, then the other way round.
    let old = Identity::load(&old_dir).expect("v2 identity loads");
    let new = Identity::load(&new_dir).expect("v1 identity loads");
    for (listener_id, caller_id) in [(&old, &new), (&new, &old)] {
        let mut listener = listen(listener_id, vec![pin(caller_id, "caller")]).await;
        let addr = listener.local_addr().to_string();
        let listener_pin = pin(listener_id, "listener");
        let (dialed, accepted) = tokio::join!(
            dial(&addr, caller_id, &listener_pin, Duration::from_secs(10)),
            guard("accept", listener.accept())
        );
        dialed.expect("caller completes the handshake");
        let accepted = accepted.expect("listener authenticates the caller");
        assert_eq!(
            accepted.peer.fingerprint(),
            caller_id.certificate().fingerprint()
        );
    }
}

#[test]
fn a_broken_key_file_is_refused_without_repeating_its_contents() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), &["keygen", "--name", "Kim"]);
    let key = tmp.path().join("key.pem");
    let good = key_der(&key);
    let seed_b64 = data_encoding::BASE64.encode(&good[16..]);
    let cases: [(&str, Vec<u8>); 3] = [
        // Valid PEM, but the DER is cut short: a key that ring cannot load.
        ("truncated", good[..40].to_vec()),
        // Version 5 does not exist.
        ("bad version", {
            let mut der = good.clone();
            der[4] = 5;
            der
        }),
        // Not a key at all.
        ("random", vec![0x42; 48]),
    ];
    for (what, der) in cases {
        let body = pem::encode(&pem::Pem::new("PRIVATE KEY", der.clone()));
        fs::write(&key, &body).unwrap();
        let err = run_err(tmp.path(), &["id"]);
        assert!(err.contains("key.pem"), "{what}: names the file: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        let der_b64 = data_encoding::BASE64.encode(&der);
        for secret in [&seed_b64, &der_b64] {
            assert!(
                !err.contains(secret.as_str()),
                "{what}: key material in the error: {err}"
            );
        }
    }
    // An empty key file.
    fs::write(&key, b"").unwrap();
    let err = run_err(tmp.path(), &["id"]);
    assert!(
        err.contains("key.pem") && !err.contains("panicked"),
        "{err}"
    );
}
