//! The listener against strangers (issue 11 item 14): anyone who cannot
//! prove, with the knock, that they know the listener's certificate receives
//! not one byte; the caller's first bytes carry no vchat string, SNI or
//! ALPN; and PROTOCOL.md's knock test vector matches the code.
//!
//! Real sockets on 127.0.0.1 with ephemeral ports; openssl s_client plays
//! the port scanner that speaks TLS.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::{guard, identity, listen_with, pin};
use ring::rand::SystemRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vchat::identity::Identity;
use vchat::net::knock::{unix_now, KnockKey, EPOCH_SECS, KNOCK_LEN};
use vchat::net::{dial, Listener, ListenerOptions, NetError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Short silences so the test does not wait the real 4-11 s per stranger:
/// knock deadline 0.5 s, then closed 0.1-0.3 s later.
fn quick_options() -> ListenerOptions {
    ListenerOptions {
        knock_timeout: Duration::from_millis(500),
        stranger_linger_min: Duration::from_millis(100),
        stranger_linger_max: Duration::from_millis(300),
        ..ListenerOptions::default()
    }
}

/// Connects, sends `probe`, and counts the bytes received until the
/// listener closes (EOF or reset).
async fn bytes_received_after(addr: SocketAddr, probe: &[u8]) -> usize {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    if !probe.is_empty() {
        // The listener may close while we write a long probe; what counts
        // is what comes back.
        let _ = tcp.write_all(probe).await;
    }
    count_until_close(&mut tcp).await
}

async fn count_until_close(tcp: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    guard("listener closes the connection", async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    total
}

/// What a real `dial` sends first (the knock and the ClientHello), captured
/// by a plain TCP listener that answers nothing. Returns the bytes up to the
/// end of the first TLS record.
async fn capture_caller_opening(caller: &Identity, listener: &Identity) -> Vec<u8> {
    let capture = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = capture.local_addr().unwrap().to_string();
    let listener_pin = pin(listener, "listener");
    let capturing = async {
        let (mut tcp, _) = guard("caller connects", capture.accept()).await.unwrap();
        let mut bytes = vec![0u8; KNOCK_LEN + 5];
        guard("knock and record header", tcp.read_exact(&mut bytes))
            .await
            .unwrap();
        let record_len = u16::from_be_bytes([bytes[KNOCK_LEN + 3], bytes[KNOCK_LEN + 4]]) as usize;
        let mut record = vec![0u8; record_len];
        guard("ClientHello record", tcp.read_exact(&mut record))
            .await
            .unwrap();
        bytes.extend_from_slice(&record);
        bytes
        // `tcp` is dropped here: closed without a byte of answer.
    };
    let (dialed, bytes) = tokio::join!(
        guard("dial gives up", dial(&addr, caller, &listener_pin, TIMEOUT)),
        capturing
    );
    let err = dialed.err();
    // The capture never answered: the caller must say so in plain words.
    match err {
        Some(err @ NetError::NoAnswer { .. }) => {
            let msg = err.to_string();
            for needed in [
                "never answered",
                "certificate you pinned",
                "2 minutes",
                "firewall",
            ] {
                assert!(msg.contains(needed), "{needed:?} missing from: {msg}");
            }
        }
        other => panic!("expected NoAnswer from a silent listener, got {other:?}"),
    }
    bytes
}

/// `openssl s_client -tls1_3` against `addr`, optionally with a client
/// certificate; returns its combined output.
async fn openssl_s_client(addr: SocketAddr, cert: Option<(&str, &str)>) -> String {
    let target = addr.to_string();
    let mut args = vec!["s_client", "-connect", target.as_str(), "-tls1_3"];
    if let Some((cert, key)) = cert {
        args.extend(["-cert", cert, "-key", key]);
    }
    let out = tokio::process::Command::new("openssl")
        .args(&args)
        .stdin(Stdio::null())
        .output();
    let out = guard("openssl s_client", out)
        .await
        .expect("openssl must be installed (apt-get install openssl)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Proves the listener still serves: a pinned peer connects.
async fn assert_still_serving(listener: &mut Listener, listener_id: &Identity, caller: &Identity) {
    let addr = listener.local_addr().to_string();
    let listener_pin = pin(listener_id, "listener");
    let (dialed, accepted) = tokio::join!(
        dial(&addr, caller, &listener_pin, TIMEOUT),
        guard("accept", listener.accept())
    );
    dialed.expect("pinned caller connects");
    assert!(accepted.is_some(), "listener alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_receives_zero_bytes_and_the_caller_still_gets_in() {
    let (alice, bob, mallory) = (identity("alice"), identity("bob"), identity("mallory"));
    let mut listener = listen_with(&alice, vec![pin(&bob, "bob")], quick_options()).await;
    let addr = listener.local_addr();
    let alice_key = KnockKey::for_certificate(alice.certificate().der().as_ref());
    let rng = SystemRandom::new();
    let now = unix_now();

    // A real caller's opening, captured elsewhere. Sent once it is a valid
    // knock and the listener answers (a ServerHello): proof the capture is
    // good. Sent again it is a replay and gets nothing.
    let opening = capture_caller_opening(&bob, &alice).await;
    let first_use = {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&opening).await.unwrap();
        let mut buf = [0u8; 1];
        guard("ServerHello to the first use", tcp.read(&mut buf))
            .await
            .unwrap_or(0)
    };
    assert!(first_use > 0, "the captured opening must be a valid knock");

    let wrong_epoch_past = alice_key.knock(&[1u8; 16], now - 5 * EPOCH_SECS);
    let wrong_epoch_future = alice_key.knock(&[2u8; 16], now + 5 * EPOCH_SECS);
    let other_cert = KnockKey::for_certificate(mallory.certificate().der().as_ref())
        .fresh(&rng, now)
        .unwrap();
    let mut knock_then_hello = other_cert.to_vec();
    knock_then_hello.extend_from_slice(&opening[KNOCK_LEN..]);
    let garbage = [0xA5u8; 600];
    let probes: Vec<(&str, Vec<u8>)> = vec![
        ("plain TCP connect and read", Vec::new()),
        ("garbage", garbage.to_vec()),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("a bare TLS ClientHello", opening[KNOCK_LEN..].to_vec()),
        ("a replayed knock and ClientHello", opening.clone()),
        ("a knock from 5 epochs ago", wrong_epoch_past.to_vec()),
        ("a knock from 5 epochs ahead", wrong_epoch_future.to_vec()),
        ("a knock keyed by another certificate", knock_then_hello),
        ("47 bytes, then nothing", vec![0u8; KNOCK_LEN - 1]),
    ];
    let runs = probes
        .into_iter()
        .map(|(what, probe)| async move { (what, bytes_received_after(addr, &probe).await) });
    for (what, received) in futures_join_all(runs).await {
        assert_eq!(received, 0, "{what}: the listener sent {received} bytes");
    }

    // openssl s_client, TLS 1.3, without and with a client certificate.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ed25519",
            "-nodes",
            "-subj",
            "/CN=scanner",
        ])
        .args(["-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (without, with) = tokio::join!(
        openssl_s_client(addr, None),
        openssl_s_client(addr, Some((cert, key)))
    );
    for (what, out) in [
        ("without a certificate", without),
        ("with a certificate", with),
    ] {
        assert!(
            out.contains("has read 0 bytes"),
            "openssl s_client {what} must read 0 bytes:\n{out}"
        );
        assert!(!out.to_lowercase().contains("vchat"), "{out}");
    }

    assert_still_serving(&mut listener, &alice, &bob).await;
}

/// Runs futures concurrently (strangers wait out their silence in parallel).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The extension types of a TLS ClientHello record (5-byte header first).
fn client_hello_extensions(record: &[u8]) -> Vec<u16> {
    assert_eq!(record[0], 0x16, "a handshake record");
    let hs = &record[5..];
    assert_eq!(hs[0], 0x01, "a ClientHello");
    let mut at = 4 + 2 + 32; // handshake header, legacy_version, random
    let skip = |at: &mut usize, len_bytes: usize| {
        let len = hs[*at..*at + len_bytes]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | *b as usize);
        *at += len_bytes + len;
    };
    skip(&mut at, 1); // legacy_session_id
    skip(&mut at, 2); // cipher_suites
    skip(&mut at, 1); // legacy_compression_methods
    let ext_end = at + 2 + u16::from_be_bytes([hs[at], hs[at + 1]]) as usize;
    at += 2;
    let mut types = Vec::new();
    while at < ext_end {
        types.push(u16::from_be_bytes([hs[at], hs[at + 1]]));
        let len = u16::from_be_bytes([hs[at + 2], hs[at + 3]]) as usize;
        at += 4 + len;
    }
    assert_eq!(at, ext_end, "extensions parse to their declared end");
    types
}

#[tokio::test]
async fn the_callers_client_hello_has_no_vchat_string_sni_or_alpn() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let opening = capture_caller_opening(&bob, &alice).await;
    // The 48 knock bytes come first and are a valid knock for alice.
    let knock: [u8; KNOCK_LEN] = opening[..KNOCK_LEN].try_into().unwrap();
    KnockKey::for_certificate(alice.certificate().der().as_ref())
        .verify(&knock, unix_now())
        .expect("the first 48 bytes are the knock");
    let hello = &opening[KNOCK_LEN..];
    let types = client_hello_extensions(hello);
    assert!(!types.is_empty(), "a TLS 1.3 ClientHello has extensions");
    assert!(!types.contains(&0x0000), "server_name sent: {types:04x?}");
    assert!(!types.contains(&0x0010), "ALPN offered: {types:04x?}");
    let lower = opening.to_ascii_lowercase();
    assert!(
        !lower.windows(5).any(|w| w == b"vchat"),
        "\"vchat\" appears in the caller's first bytes"
    );
}

#[test]
fn protocol_md_shows_the_knock_test_vector_the_code_computes() {
    // The vector lives in PROTOCOL.md section 2 between these markers; the
    // code must produce exactly the values printed there.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md"))
        .expect("PROTOCOL.md");
    let begin = doc
        .find("<!-- knock-vector -->")
        .expect("vector start marker");
    let end = doc
        .find("<!-- /knock-vector -->")
        .expect("vector end marker");
    let vector = &doc[begin..end];
    let field = |name: &str| -> String {
        let line = vector
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} missing from the vector"));
        line.split_once(':')
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let pem_start = vector
        .find("-----BEGIN CERTIFICATE-----")
        .expect("certificate PEM");
    let pem_end = vector
        .find("-----END CERTIFICATE-----")
        .expect("certificate PEM end")
        + "-----END CERTIFICATE-----".len();
    let der = pem::parse(&vector[pem_start..pem_end])
        .unwrap()
        .into_contents();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let unhex = |s: &str| -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let nonce: [u8; 16] = unhex(&field("nonce")).try_into().unwrap();
    let time: u64 = field("time")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        field("epoch").split_whitespace().next().unwrap(),
        (time / 30).to_string()
    );
    assert_eq!(field("epoch-bytes"), hex(&(time / 30).to_be_bytes()));
    assert_eq!(field("K"), hex(&vchat::net::knock::key_bytes(&der)));
    let knock = KnockKey::for_certificate(&der).knock(&nonce, time);
    assert_eq!(field("tag"), hex(&knock[16..]));
    assert_eq!(field("knock"), hex(&knock));
}

#[tokio::test]
async fn a_knocked_caller_cannot_make_the_listener_buffer_a_huge_handshake() {
    // Someone who knows the certificate (so the knock is valid) declares a
    // 16 MiB ClientHello and streams it. rustls holds at most 64 KiB of a
    // handshake message, then fails the handshake: the listener closes the
    // connection long before we are done sending.
    let (alice, bob) = (identity("alice"), identity("bob"));
    let mut listener = listen_with(&alice, vec![pin(&bob, "bob")], quick_options()).await;
    let addr = listener.local_addr();
    let knock = KnockKey::for_certificate(alice.certificate().der().as_ref())
        .fresh(&SystemRandom::new(), unix_now())
        .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    wr.write_all(&knock).await.unwrap();
    const SENT_AT_MOST: usize = 16 << 20;
    let sending = async move {
        let mut sent = 0usize;
        let mut first = true;
        while sent < SENT_AT_MOST {
            // One TLS handshake record of 16 KiB; the first starts a
            // ClientHello that declares 0xFFFFFF bytes.
            let mut record = vec![0x16, 0x03, 0x03, 0x40, 0x00];
            let mut body = vec![0u8; 0x4000];
            if first {
                body[..4].copy_from_slice(&[0x01, 0xFF, 0xFF, 0xFF]);
                first = false;
            }
            record.extend_from_slice(&body);
            if wr.write_all(&record).await.is_err() {
                break;
            }
            sent += record.len();
        }
        sent
    };
    let reading = async move {
        let mut reply = Vec::new();
        let _ = rd.read_to_end(&mut reply).await;
        reply.len()
    };
    // The listener closes first (the read ends); sending stops on its own
    // once the socket is reset, or at the cap.
    let (sent, reply) = guard("listener gives up on the huge handshake", async {
        tokio::join!(sending, reading)
    })
    .await;
    assert!(reply < 64, "at most an alert back: {reply} bytes");
    assert!(
        sent < SENT_AT_MOST,
        "the listener kept reading all {sent} bytes instead of closing"
    );
    assert_still_serving(&mut listener, &alice, &bob).await;
}
