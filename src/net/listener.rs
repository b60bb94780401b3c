//! The listener's side: accept TCP connections, run pinned handshakes
//! concurrently under a timeout and a bound, and hand out only the
//! connections whose peer proved it owns a pinned certificate.
//!
//! A failed, slow or hostile connection never stops the listener from serving
//! the next one: each handshake runs in its own task, and its failure is a
//! log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use super::danger::PinSet;
use super::error::{classify, rustls_error};
use super::{tls, NetError, SecureStream};
use crate::identity::{Fingerprint, Identity};

/// How long a connection may take from TCP accept to a finished handshake
/// before it is closed. A real handshake takes a few round trips (well under a
/// second even across continents); 10 s leaves room for a congested link
/// while stopping slowloris-style clients from holding slots.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many connections may be handshaking at once; more are closed
/// on arrival. Bounds the memory and tasks an unauthenticated scanner can
/// make us spend, while a real peer (one connection) is never near it.
pub const MAX_PENDING_HANDSHAKES: usize = 32;

/// Tunables of a listener; the defaults are the documented constants.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`MAX_PENDING_HANDSHAKES`].
    pub max_pending_handshakes: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_pending_handshakes: MAX_PENDING_HANDSHAKES,
        }
    }
}

/// A bound socket serving pinned handshakes in the background.
pub struct Listener {
    local_addr: SocketAddr,
    authenticated: mpsc::Receiver<SecureStream>,
    // Stops the accept loop and all handshakes in flight when dropped.
    _stop: DropGuard,
}

impl Listener {
    /// Binds `addr` and starts accepting. Only peers in `pins` get through.
    pub async fn bind(
        addr: &str,
        identity: &Identity,
        pins: PinSet,
        options: ListenerOptions,
    ) -> Result<Listener, NetError> {
        let config = tls::server_config(identity, pins.clone())?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let local_addr = tcp.local_addr().map_err(|source| NetError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
        let stop = CancellationToken::new();
        // Capacity 1: an authenticated connection waits (holding its slot)
        // until the application takes it, rather than piling up.
        let (tx, authenticated) = mpsc::channel(1);
        let serve = AcceptLoop {
            tcp,
            acceptor: TlsAcceptor::from(config),
            pins,
            options,
            slots: Arc::new(Semaphore::new(0)),
            authenticated: tx,
            stop: stop.clone(),
        };
        tokio::spawn(serve.run());
        Ok(Listener {
            local_addr,
            authenticated,
            _stop: stop.drop_guard(),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next pinned peer to complete a handshake.
    pub async fn accept(&mut self) -> Option<SecureStream> {
        self.authenticated.recv().await
    }
}

struct AcceptLoop {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    pins: PinSet,
    options: ListenerOptions,
    slots: Arc<Semaphore>,
    authenticated: mpsc::Sender<SecureStream>,
    stop: CancellationToken,
}

impl AcceptLoop {
    async fn run(self) {
        self.slots.add_permits(self.options.max_pending_handshakes);
        loop {
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = self.tcp.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE/ENFILE: back off briefly instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                info!(
                    %remote,
                    "closed connection: {} handshakes already in progress",
                    self.options.max_pending_handshakes
                );
                continue;
            };
            let handshake = Handshake {
                acceptor: self.acceptor.clone(),
                pins: self.pins.clone(),
                timeout: self.options.handshake_timeout,
                authenticated: self.authenticated.clone(),
            };
            let stop = self.stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = handshake.run(tcp, remote) => {}
                }
                drop(slot);
            });
        }
    }
}

struct Handshake {
    acceptor: TlsAcceptor,
    pins: PinSet,
    timeout: Duration,
    authenticated: mpsc::Sender<SecureStream>,
}

impl Handshake {
    async fn run(self, tcp: TcpStream, remote: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let stream = match tokio::time::timeout(self.timeout, self.acceptor.accept(tcp)).await {
            Err(_) => {
                info!(%remote, "closed connection: no TLS handshake within {:?}", self.timeout);
                return;
            }
            Ok(Err(e)) => {
                log_refusal(remote, e);
                return;
            }
            Ok(Ok(stream)) => stream,
        };
        let presented = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|c| Fingerprint::of_der(c.as_ref()));
        // The verifier already checked the pin; this only recovers the name.
        let Some(peer) = presented.and_then(|fp| self.pins.find(&fp)).cloned() else {
            warn!(%remote, "closed connection: handshake finished without a pinned certificate");
            return;
        };
        info!(%remote, peer = %peer.name, "authenticated {} ({})", peer.name, peer.fingerprint().short());
        let secured = SecureStream {
            peer,
            remote,
            stream: stream.into(),
        };
        if self.authenticated.send(secured).await.is_err() {
            debug!(%remote, "listener closed before the connection was taken");
        }
    }
}

/// One log line per refused connection, at a level matching its meaning:
/// unpinned certificates are worth a warning (someone tried), scanners and
/// non-TLS clients are routine noise.
fn log_refusal(remote: SocketAddr, err: std::io::Error) {
    match classify(remote, err) {
        NetError::PeerNotPinned { presented, .. } => warn!(
            %remote,
            "refused connection: certificate {} ({presented}) is not pinned; if this is a \
             friend, ask for their cert.pem and run `vchat trust`",
            presented.short()
        ),
        NetError::Tls { source, .. } => match rustls_error(&source) {
            Some(rustls::Error::PeerIncompatible(why)) => {
                info!(%remote, "closed connection: client is not a TLS 1.3 vchat peer ({why:?})")
            }
            Some(rustls::Error::NoCertificatesPresented) => {
                warn!(%remote, "refused connection: client presented no certificate")
            }
            Some(rustls::Error::InvalidMessage(_)) => {
                info!(%remote, "closed connection: not TLS ({source})")
            }
            _ => info!(%remote, "closed connection: handshake failed ({source})"),
        },
        other => info!(%remote, "closed connection: {other}"),
    }
}
