//! The pinned mutual-TLS channel over real loopback sockets: who gets in,
//! who is refused and with what error, and that nothing stops the listener.
//!
//! Raw TLS clients here knock first (`knocked`), as a vchat caller does: the
//! listener would otherwise stay silent and the TLS rules behind the knock
//! would go untested. What strangers without a knock get (nothing) is in
//! `tests/net_knock.rs`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{guard, identity, listen, listen_with, pin};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vchat::identity::Identity;
use vchat::net::danger::PinnedServerVerifier;
use vchat::net::knock::{unix_now, KnockKey, KNOCK_LEN};
use vchat::net::{
    classify, crypto_provider, dial, ListenerOptions, NetError, PinSet, SecureStream,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Options that make the listener's silence short enough for tests: a
/// stranger is closed 0.1-0.3 s after a 0.5 s knock deadline.
fn quick_options() -> ListenerOptions {
    ListenerOptions {
        knock_timeout: Duration::from_millis(500),
        stranger_linger_min: Duration::from_millis(100),
        stranger_linger_max: Duration::from_millis(300),
        ..ListenerOptions::default()
    }
}

/// A fresh valid knock for the listener whose identity is `listener`.
fn knock_for(listener: &Identity) -> [u8; KNOCK_LEN] {
    KnockKey::for_certificate(listener.certificate().der().as_ref())
        .fresh(&ring::rand::SystemRandom::new(), unix_now())
        .unwrap()
}

/// A TCP connection to `addr` that has already sent a valid knock for
/// `listener`, ready for a raw TLS client.
async fn knocked(addr: std::net::SocketAddr, listener: &Identity) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&knock_for(listener)).await.unwrap();
    tcp
}

/// A loopback port that knocks for `listener` on behalf of whatever connects
/// to it (an external client such as openssl, which cannot knock), then
/// relays bytes both ways to `target`.
async fn knocking_relay(target: std::net::SocketAddr, listener: &Identity) -> std::net::SocketAddr {
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = relay.local_addr().unwrap();
    let key = KnockKey::for_certificate(listener.certificate().der().as_ref());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = relay.accept().await {
            let knock = key
                .fresh(&ring::rand::SystemRandom::new(), unix_now())
                .unwrap();
            tokio::spawn(async move {
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    return;
                };
                if upstream.write_all(&knock).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    addr
}

/// Reads one byte from an established stream: the listener's verdict on our
/// certificate (TLS 1.3 sends it after the caller's handshake completes).
async fn first_read(secure: &mut SecureStream) -> Result<usize, NetError> {
    let mut buf = [0u8; 1];
    secure
        .stream
        .read(&mut buf)
        .await
        .map_err(|e| classify(secure.remote, e))
}

/// Proves the listener still serves: a pinned peer connects and is identified.
async fn assert_still_serving(
    listener: &mut vchat::net::Listener,
    listener_id: &Identity,
    caller: &Identity,
    caller_name: &str,
) {
    let addr = listener.local_addr().to_string();
    let listener_pin = pin(listener_id, "listener");
    let (dialed, accepted) = tokio::join!(
        dial(&addr, caller, &listener_pin, TIMEOUT),
        guard("accept", listener.accept())
    );
    dialed.expect("pinned caller connects");
    assert_eq!(accepted.expect("listener alive").peer.name, caller_name);
}

#[tokio::test]
async fn pinned_both_ways_connects_and_listener_learns_who() {
    let (alice, bob, carol) = (identity("alice"), identity("bob"), identity("carol"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob"), pin(&carol, "carol")]).await;
    let addr = listener.local_addr().to_string();

    for (caller, name) in [(&carol, "carol"), (&bob, "bob")] {
        let alice_pin = pin(&alice, "alice");
        let (dialed, accepted) = tokio::join!(
            dial(&addr, caller, &alice_pin, TIMEOUT),
            guard("accept", listener.accept())
        );
        let mut dialed = dialed.expect("dial");
        let mut accepted = accepted.expect("accepted");
        assert_eq!(accepted.peer.name, name);
        assert_eq!(
            accepted.peer.fingerprint(),
            caller.certificate().fingerprint()
        );
        assert_eq!(dialed.peer.name, "alice");

        // Application data flows both ways over TLS 1.3.
        dialed.stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        accepted.stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        let (_, conn) = accepted.stream.get_ref();
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        // No ALPN is offered or negotiated (PROTOCOL.md section 2).
        assert_eq!(conn.alpn_protocol(), None);
    }
}

#[tokio::test]
async fn every_connection_is_a_full_handshake() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob")]).await;
    // One client config for all connections: if resumption or tickets were
    // enabled on either side, the second connection would resume.
    let config =
        vchat::net::tls::client_config(&bob, PinSet::new(vec![pin(&alice, "alice")])).unwrap();
    for _ in 0..3 {
        let tcp = knocked(listener.local_addr(), &alice).await;
        let name = ServerName::try_from(vchat::net::tls::SERVER_NAME).unwrap();
        let connector = TlsConnector::from(config.clone());
        let (dialed, accepted) = tokio::join!(
            connector.connect(name, tcp),
            guard("accept", listener.accept())
        );
        let mut dialed = dialed.unwrap();
        let mut accepted = accepted.unwrap().stream;
        // Exchange data so any session ticket the server sends is processed.
        accepted.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        dialed.read_exact(&mut b).await.unwrap();
        assert_eq!(
            dialed.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Full)
        );
        assert_eq!(
            accepted.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Full)
        );
    }
}

#[tokio::test]
async fn unpinned_caller_is_rejected_and_told_why() {
    let (alice, bob, mallory) = (identity("alice"), identity("bob"), identity("mallory"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob")]).await;
    let addr = listener.local_addr().to_string();

    // The caller's handshake completes (TLS 1.3), the verdict arrives on first read.
    let mut dialed = dial(&addr, &mallory, &pin(&alice, "alice"), TIMEOUT)
        .await
        .expect("client side of the handshake completes");
    let err = guard("first read", first_read(&mut dialed))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::RejectedByPeer { .. }), "{err}");
    assert!(err.to_string().contains("vchat trust"), "{err}");

    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

#[tokio::test]
async fn unpinned_listener_is_rejected_by_the_caller_with_both_fingerprints() {
    let (alice, bob, mallory) = (identity("alice"), identity("bob"), identity("mallory"));
    // Mallory sits where alice should be and, knowing alice's certificate,
    // takes any knock, then serves her own certificate; bob pinned the real
    // alice. (A real vchat listener of mallory's would not even answer: see
    // tests/net_knock.rs.)
    let server =
        vchat::net::tls::server_config(&mallory, PinSet::new(vec![pin(&bob, "bob")])).unwrap();
    let tcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp_listener.local_addr().unwrap().to_string();
    let server_task = tokio::spawn(async move {
        let (mut tcp, _) = tcp_listener.accept().await.unwrap();
        let mut knock = [0u8; KNOCK_LEN];
        tcp.read_exact(&mut knock).await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
    });
    let err = dial(&addr, &bob, &pin(&alice, "alice"), TIMEOUT)
        .await
        .err()
        .expect("must not connect");
    let _ = guard("server task", server_task).await;
    match &err {
        NetError::PeerNotPinned {
            presented,
            expected,
            ..
        } => {
            assert_eq!(*presented, mallory.certificate().fingerprint());
            assert_eq!(expected[0].1, alice.certificate().fingerprint());
        }
        other => panic!("wrong error: {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&mallory.certificate().fingerprint().short()),
        "{msg}"
    );
    assert!(
        msg.contains(&alice.certificate().fingerprint().to_string()),
        "{msg}"
    );
    assert!(msg.contains("intercepting"), "{msg}");
}

fn client_config_with(
    server_pin: &Identity,
    resolver: Option<Arc<dyn ResolvesClientCert>>,
) -> Arc<ClientConfig> {
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier::new(
            PinSet::new(vec![pin(server_pin, "listener")]),
            provider,
        )));
    let mut config = match resolver {
        Some(r) => builder.with_client_cert_resolver(r),
        None => builder.with_no_client_auth(),
    };
    // Several ALPN values, as an implementer might offer: the listener must
    // ignore them all (PROTOCOL.md section 2).
    config.alpn_protocols = vec![b"vchat/1".to_vec(), b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Reads until the stream ends or fails; returns whether it failed.
async fn read_to_end_fails<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut sink = Vec::new();
    guard("read to end", stream.read_to_end(&mut sink))
        .await
        .is_err()
}

#[tokio::test]
async fn caller_without_a_certificate_is_rejected() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob")]).await;
    let tcp = knocked(listener.local_addr(), &alice).await;
    let connector = TlsConnector::from(client_config_with(&alice, None));
    let name = ServerName::try_from("peer.invalid").unwrap();
    match connector.connect(name, tcp).await {
        Err(_) => {}
        Ok(mut stream) => assert!(read_to_end_fails(&mut stream).await, "must be refused"),
    }
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

/// Presents a chosen certificate with a chosen key: an attacker who copied a
/// pinned certificate but does not have its private key.
#[derive(Debug)]
struct StolenCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for StolenCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct StolenServerCertificate(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for StolenServerCertificate {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn forged(cert_of: &Identity, key_of: &Identity) -> Arc<CertifiedKey> {
    let key = key_of.signing_key(&crypto_provider()).unwrap();
    Arc::new(CertifiedKey::new(
        vec![cert_of.certificate().der().clone()],
        key,
    ))
}

#[tokio::test]
async fn pinned_certificate_with_the_wrong_key_is_rejected_by_the_listener() {
    let (alice, bob, mallory) = (identity("alice"), identity("bob"), identity("mallory"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob")]).await;
    // Mallory presents bob's (pinned) certificate but signs with her own key.
    let resolver = Arc::new(StolenCertificate(forged(&bob, &mallory)));
    let tcp = knocked(listener.local_addr(), &alice).await;
    let connector = TlsConnector::from(client_config_with(&alice, Some(resolver)));
    let name = ServerName::try_from("peer.invalid").unwrap();
    match connector.connect(name, tcp).await {
        Err(_) => {}
        Ok(mut stream) => assert!(read_to_end_fails(&mut stream).await, "must be refused"),
    }
    // The listener never hands out the forged connection: the next one it
    // yields is the real bob.
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

#[tokio::test]
async fn pinned_certificate_with_the_wrong_key_is_rejected_by_the_caller() {
    let (alice, bob, mallory) = (identity("alice"), identity("bob"), identity("mallory"));
    // Mallory serves alice's (pinned) certificate with her own key.
    let provider = crypto_provider();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StolenServerCertificate(forged(&alice, &mallory))));
    let tcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp_listener.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let (mut tcp, _) = tcp_listener.accept().await.unwrap();
        // A forger would read the caller's knock as a real listener does.
        let mut knock = [0u8; KNOCK_LEN];
        tcp.read_exact(&mut knock).await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(Arc::new(server))
            .accept(tcp)
            .await;
    });
    let err = dial(&addr.to_string(), &bob, &pin(&alice, "alice"), TIMEOUT)
        .await
        .err()
        .expect("forged listener must be refused");
    let msg = err.to_string();
    assert!(
        msg.to_lowercase().contains("signature") || msg.contains("BadSignature"),
        "{msg}"
    );
    let _ = guard("server task", server_task).await;
}

#[tokio::test]
async fn tls12_only_client_is_refused_and_listener_keeps_serving() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob")]).await;
    // openssl cannot knock: a relay knocks for it, so this checks the TLS
    // policy behind the knock (without one, openssl gets nothing at all).
    let port = knocking_relay(listener.local_addr(), &alice).await.port();
    let out = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_2",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    let out = guard("openssl s_client", out)
        .await
        .expect("openssl must be installed (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "TLS 1.2 handshake must fail:\n{text}"
    );
    assert!(
        text.contains("protocol version") || text.contains("alert"),
        "expected a protocol-version alert:\n{text}"
    );
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

#[tokio::test]
async fn garbage_and_http_after_a_valid_knock_are_closed_and_listener_keeps_serving() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let mut listener = listen(&alice, vec![pin(&bob, "bob")]).await;
    let garbage = [0xFFu8; 600];
    let probes: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        &garbage,
        b"\x16\x03\x01\xff\xff", // a TLS record header declaring a huge length
    ];
    for probe in probes {
        // Someone who knows our certificate but does not speak TLS.
        let mut tcp = knocked(listener.local_addr(), &alice).await;
        tcp.write_all(probe).await.unwrap();
        // The listener answers with at most an alert, then closes.
        let mut reply = Vec::new();
        let _ = guard("close", tcp.read_to_end(&mut reply)).await;
        assert!(
            reply.len() < 64,
            "no more than an alert: {} bytes",
            reply.len()
        );
    }
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

#[tokio::test]
async fn idle_connection_is_closed_silently_after_the_knock_deadline() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let options = quick_options();
    let earliest = options.knock_timeout + options.stranger_linger_min;
    let mut listener = listen_with(&alice, vec![pin(&bob, "bob")], options).await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(listener.local_addr()).await.unwrap();
    let mut buf = Vec::new();
    let read = guard("idle close", idle.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok() && buf.is_empty(),
        "closed without a word: {read:?}"
    );
    assert!(
        started.elapsed() >= earliest,
        "closed after {:?}, before the knock deadline plus the minimum linger {earliest:?}",
        started.elapsed()
    );
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

#[tokio::test]
async fn knocked_slowloris_is_closed_at_the_handshake_timeout() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let timeout = Duration::from_millis(300);
    let options = ListenerOptions {
        handshake_timeout: timeout,
        ..ListenerOptions::default()
    };
    let mut listener = listen_with(&alice, vec![pin(&bob, "bob")], options).await;
    // A valid knock, then a partial ClientHello that never completes.
    let started = Instant::now();
    let mut slow = knocked(listener.local_addr(), &alice).await;
    slow.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01])
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The guard fails the test if the listener keeps it open.
    let _ = guard(
        "slowloris closed by the timeout",
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(
        started.elapsed() >= timeout,
        "not closed before the timeout"
    );
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

/// Whether the listener has closed `tcp`: reads until EOF or error.
async fn closed_by_listener(tcp: &mut TcpStream) -> usize {
    let mut buf = Vec::new();
    let _ = guard("closed by the listener", tcp.read_to_end(&mut buf)).await;
    buf.len()
}

#[tokio::test]
async fn a_full_knock_stage_closes_its_oldest_connection_not_the_newest() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let options = ListenerOptions {
        // Long enough that only the bound can explain a close.
        knock_timeout: Duration::from_secs(120),
        max_unknocked: 2,
        ..ListenerOptions::default()
    };
    let mut listener = listen_with(&alice, vec![pin(&bob, "bob")], options).await;
    let mut first = TcpStream::connect(listener.local_addr()).await.unwrap();
    let _second = TcpStream::connect(listener.local_addr()).await.unwrap();
    let _third = TcpStream::connect(listener.local_addr()).await.unwrap();
    // The third arrival pushed the first (oldest) out, without a byte.
    assert_eq!(closed_by_listener(&mut first).await, 0);
    // The stage is full of strangers, yet a pinned caller gets in: it
    // pushes out the oldest stranger and leaves the stage with its knock.
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

#[tokio::test]
async fn a_full_handshake_stage_closes_its_oldest_connection_not_the_newest() {
    let (alice, bob) = (identity("alice"), identity("bob"));
    let options = ListenerOptions {
        handshake_timeout: Duration::from_secs(120),
        max_pending_handshakes: 2,
        ..ListenerOptions::default()
    };
    let mut listener = listen_with(&alice, vec![pin(&bob, "bob")], options).await;
    // Knocked, then silent: they hold handshake slots.
    let mut first = knocked(listener.local_addr(), &alice).await;
    let _second = knocked(listener.local_addr(), &alice).await;
    let _third = knocked(listener.local_addr(), &alice).await;
    assert_eq!(closed_by_listener(&mut first).await, 0);
    assert_still_serving(&mut listener, &alice, &bob, "bob").await;
}

/// A port that answers the knock and the ClientHello like a web server does
/// gets a plain-words error, not rustls's name for a bad record type.
#[tokio::test]
async fn a_port_that_does_not_speak_tls_is_named_so() {
    let alice = identity("Alice");
    let bob = identity("Bob");
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = web.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = web.accept().await.unwrap();
        let mut request = [0u8; 64];
        let _ = socket.read(&mut request).await;
        let _ = socket
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        // Hold the socket open so the caller reads the reply, not an EOF.
        let _ = socket.read(&mut request).await;
    });
    let error = match guard(
        "dial",
        dial(&addr.to_string(), &bob, &pin(&alice, "alice"), TIMEOUT),
    )
    .await
    {
        Ok(_) => panic!("a web server is not a vchat listener"),
        Err(error) => error,
    };
    assert!(matches!(error, NetError::NotTls { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("not with TLS"), "{message}");
    assert!(!message.contains("InvalidContentType"), "{message}");
    assert!(
        !message.contains("http"),
        "no library URLs or type names: {message}"
    );
}
