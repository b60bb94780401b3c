//! The caller's side: connect to a listener, knock, and run the pinned
//! handshake.
//!
//! The knock (`knock.rs`) is keyed by the listener's certificate, which the
//! caller has pinned; a listener that cannot verify it sends nothing at all,
//! so the caller's only symptom of a wrong pin, a skewed clock or a wrong
//! port is silence. [`NetError::NoAnswer`] says so in plain words.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ring::rand::SystemRandom;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::danger::PinSet;
use super::error::{classify, rustls_error};
use super::knock::{unix_now, KnockKey};
use super::{tls, NetError, SecureStream};
use crate::identity::{Fingerprint, Identity, PinnedPeer};

/// Connects to `addr`, sends the knock for `peer`'s certificate, and
/// completes a mutual TLS 1.3 handshake, accepting the listener only if it
/// presents the certificate of `peer`.
///
/// TLS 1.3 gives the listener's verdict on *our* certificate only with the
/// first read, so a returned stream is not yet a call: the protocol layer
/// waits for the listener's acceptance message before saying "connected".
pub async fn dial(
    addr: &str,
    identity: &Identity,
    peer: &PinnedPeer,
    timeout: Duration,
) -> Result<SecureStream, NetError> {
    let remote = resolve(addr).await?;
    let config = tls::client_config(identity, PinSet::new(vec![peer.clone()]))?;
    let knock = KnockKey::for_certificate(peer.certificate.der().as_ref())
        .fresh(&SystemRandom::new(), unix_now())
        .map_err(|_| NetError::Random)?;
    let started = Instant::now();
    // Whether the TCP connection was made, so a timeout can tell "nothing
    // at that address" from "something accepted and stayed silent".
    let connected = AtomicBool::new(false);
    let connect = async {
        let mut tcp = TcpStream::connect(remote)
            .await
            .map_err(|source| NetError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        connected.store(true, Ordering::Relaxed);
        // Frames are latency-sensitive; never wait to coalesce small writes.
        let _ = tcp.set_nodelay(true);
        // The knock goes first, alone: the listener reads exactly these 48
        // bytes before it lets TLS see anything.
        tcp.write_all(&knock)
            .await
            .map_err(|source| NetError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let server_name = ServerName::try_from(tls::SERVER_NAME)
            .map_err(|_| NetError::Config(rustls::Error::General("bad server name".into())))?;
        TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                if closed_without_answer(&e) {
                    NetError::NoAnswer {
                        addr: remote,
                        waited: started.elapsed(),
                    }
                } else {
                    classify(remote, e)
                }
            })
    };
    let stream = tokio::time::timeout(timeout, connect).await.map_err(|_| {
        if connected.load(Ordering::Relaxed) {
            NetError::NoAnswer {
                addr: remote,
                waited: timeout,
            }
        } else {
            NetError::Connect {
                addr: addr.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no TCP answer within {timeout:?}"),
                ),
            }
        }
    })??;
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|c| Fingerprint::of_der(c.as_ref()));
    debug_assert_eq!(presented, Some(peer.fingerprint()));
    Ok(SecureStream {
        peer: peer.clone(),
        remote,
        stream: stream.into(),
    })
}

async fn resolve(addr: &str) -> Result<SocketAddr, NetError> {
    let resolve_err = |source| NetError::Resolve {
        addr: addr.to_owned(),
        source,
    };
    tokio::net::lookup_host(addr)
        .await
        .map_err(resolve_err)?
        .next()
        .ok_or_else(|| resolve_err(std::io::Error::other("no address found")))
}

/// Whether a failed client handshake looks like a listener that never
/// answered: the connection ended (EOF or reset) without a TLS alert or a
/// certificate to complain about. That is what a vchat listener does to a
/// knock it cannot verify.
fn closed_without_answer(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, UnexpectedEof};
    rustls_error(err).is_none()
        && matches!(
            err.kind(),
            UnexpectedEof | ConnectionReset | ConnectionAborted
        )
}
