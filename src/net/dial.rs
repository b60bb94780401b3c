//! The caller's side: connect to a listener and run the pinned handshake.

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::danger::PinSet;
use super::error::classify;
use super::{tls, NetError, SecureStream};
use crate::identity::{Fingerprint, Identity, PinnedPeer};

/// Connects to `addr` and completes a mutual TLS 1.3 handshake, accepting the
/// listener only if it presents the certificate of `peer`.
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
    let connect = async {
        let tcp = TcpStream::connect(remote)
            .await
            .map_err(|source| NetError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Frames are latency-sensitive; never wait to coalesce small writes.
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(tls::SERVER_NAME)
            .map_err(|_| NetError::Config(rustls::Error::General("bad server name".into())))?;
        TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| classify(remote, e))
    };
    let stream = tokio::time::timeout(timeout, connect).await.map_err(|_| {
        NetError::HandshakeTimeout {
            addr: remote,
            timeout,
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
