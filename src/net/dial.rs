//! The caller's side: connect to a listener, knock, and run the pinned
//! handshake.
//!
//! The knock (`knock.rs`) is keyed by the listener's certificate, which the
//! caller has pinned; a listener that cannot verify it sends nothing at all,
//! so the caller's only symptom of a wrong pin, a skewed clock or a wrong
//! port is silence. [`NetError::NoAnswer`] says so in plain words.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use ring::rand::SystemRandom;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::addresses::parse_target;
use super::danger::PinSet;
use super::error::{classify, rustls_error};
use super::happy_eyeballs::connect_first;
use super::knock::{unix_now, KnockKey};
use super::{tls, NetError, SecureStream};
use crate::identity::{Fingerprint, Identity, PinnedPeer};

/// Connects to `addr` (`HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6
/// address; the port defaults to 7878), sends the knock for `peer`'s
/// certificate, and completes a mutual TLS 1.3 handshake, accepting the
/// listener only if it presents the certificate of `peer`.
///
/// Every address the host resolves to is tried, IPv6 and IPv4 interleaved,
/// the Happy Eyeballs way (`happy_eyeballs.rs`); the knock and TLS run on
/// the first TCP connection made.
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
    dial_via(addr, Route::Direct, identity, peer, timeout).await
}

/// How a call reaches the listener's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Resolve the name here and connect (Happy Eyeballs).
    Direct,
    /// Through a SOCKS5 proxy (`--proxy`, Tor's SocksPort): the host name
    /// goes to the proxy as a name (ATYP 3, "socks5h"), never resolved here,
    /// so no DNS query leaves this machine.
    Socks5(SocketAddr),
}

/// [`dial`] along `route`. Through a proxy, the remote address reported is
/// the proxy's: the only one this machine ever learns.
pub async fn dial_via(
    addr: &str,
    route: Route,
    identity: &Identity,
    peer: &PinnedPeer,
    timeout: Duration,
) -> Result<SecureStream, NetError> {
    let candidates = match route {
        Route::Direct => resolve(addr).await?,
        Route::Socks5(_) => Vec::new(),
    };
    let config = tls::client_config(identity, PinSet::new(vec![peer.clone()]))?;
    let knock = KnockKey::for_certificate(peer.certificate.der().as_ref())
        .fresh(&SystemRandom::new(), unix_now())
        .map_err(|_| NetError::Random)?;
    let started = Instant::now();
    // The address that answered, once TCP is connected, so a timeout can
    // tell "nothing at that address" from "something accepted and stayed
    // silent".
    let connected: OnceLock<SocketAddr> = OnceLock::new();
    let connect = async {
        let (mut tcp, remote): (TcpStream, SocketAddr) = match route {
            Route::Direct => {
                connect_first(&candidates)
                    .await
                    .map_err(|source| NetError::Connect {
                        addr: addr.to_owned(),
                        source,
                    })?
            }
            Route::Socks5(proxy) => (through_socks5(proxy, addr).await?, proxy),
        };
        let _ = connected.set(remote);
        // No Nagle delay, and no standing queue in the kernel.
        super::socket::tune_for_calls(&tcp);
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
        let stream = TlsConnector::from(config)
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
            })?;
        Ok::<_, NetError>((stream, remote))
    };
    let (stream, remote) = tokio::time::timeout(timeout, connect).await.map_err(|_| {
        if let Some(&remote) = connected.get() {
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

/// A TCP stream to `addr` through the SOCKS5 proxy at `proxy`, the host
/// sent as a name.
async fn through_socks5(proxy: SocketAddr, addr: &str) -> Result<TcpStream, NetError> {
    let target = parse_target(addr)?;
    let failed = |reason: String| NetError::Proxy {
        proxy,
        target: addr.to_owned(),
        reason,
    };
    let host = target.host.as_str();
    // A literal IP goes as an address; anything else as a name.
    let stream = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            tokio_socks::tcp::Socks5Stream::connect(proxy, SocketAddr::new(ip, target.port)).await
        }
        Err(_) => tokio_socks::tcp::Socks5Stream::connect(proxy, (host, target.port)).await,
    }
    .map_err(|e| failed(socks_error_in_words(&e)))?;
    Ok(stream.into_inner())
}

/// A SOCKS5 failure in words. Tor's extended errors (0xF0-0xF7, for onion
/// services) reach tokio-socks as codes it does not know.
fn socks_error_in_words(error: &tokio_socks::Error) -> String {
    use tokio_socks::Error as E;
    match error {
        E::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "nothing listens there (connection refused)".into()
        }
        E::Io(e) => e.to_string(),
        E::UnknownAuthMethod => {
            "the proxy gave a reply code SOCKS5 does not define (Tor says so when an onion \
             service cannot be found or reached)"
                .into()
        }
        other => other.to_string(),
    }
}

/// Every address `addr` names, in the resolver's order (which already
/// prefers the family the system can route).
async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, NetError> {
    let target = parse_target(addr)?;
    let resolve_err = |source| NetError::Resolve {
        addr: addr.to_owned(),
        source,
    };
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(resolve_err)?
        .collect();
    if addresses.is_empty() {
        return Err(resolve_err(std::io::Error::other("no address found")));
    }
    Ok(addresses)
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
