//! The listener's side: accept TCP connections, stay silent until a caller
//! proves with the knock that it knows our certificate, then run the pinned
//! TLS handshake, and hand out only connections whose peer proved it owns a
//! pinned certificate.
//!
//! Every connection goes through two stages, each with its own bound:
//!
//! ```text
//!  accept ─► [waiting for the knock: ≤ 256] ─valid knock─► [TLS handshake: ≤ 32] ─► Listener::accept
//!                 │ no valid knock                              │ refused / timeout
//!                 ▼                                             ▼
//!      silence, discard input, close 1-8 s                  log line, close
//!      after the knock deadline
//! ```
//!
//! A full stage makes room by closing its OLDEST connection, never by
//! refusing the newest: an attacker holding and re-opening sockets keeps
//! pushing its own old sockets out, while a real caller knocks within one
//! round trip and leaves the first stage long before it is the oldest.
//! Strangers can never enter the second stage, so they cannot delay a
//! caller's handshake at all.
//!
//! A failed, slow or hostile connection never stops the listener from serving
//! the next one: each connection runs in its own task, and its failure is a
//! log line.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use super::danger::PinSet;
use super::error::{classify, rustls_error};
use super::knock::{unix_now, KnockGate, KNOCK_LEN, REPLAY_CACHE_CAPACITY};
use super::{tls, NetError, SecureStream};
use crate::identity::{Fingerprint, Identity};

/// How long a knocked connection may take to finish the TLS handshake before
/// it is closed. A real handshake takes a few round trips (well under a
/// second even across continents); 10 s leaves room for a congested link.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many knocked connections may be handshaking at once; a new
/// one closes the oldest. Only holders of our certificate get here, so this
/// bounds what a peer (not a stranger) can make us spend on handshakes: each
/// costs at most ~100 KiB of rustls buffers (SECURITY.md).
pub const MAX_PENDING_HANDSHAKES: usize = 32;

/// How long a new connection has to send its 48-byte knock. A caller sends
/// it right after the TCP handshake, so one round trip is enough; 3 s allows
/// a very slow link while keeping idle sockets cheap to expire.
pub const KNOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// At most this many connections may be waiting for their knock (or being
/// ignored after a bad one); a new one closes the oldest. Each costs a task
/// and a few hundred bytes, so 256 is ~100 KiB, yet large enough that a
/// flood must cycle hundreds of sockets to push a caller out before its
/// knock (which arrives one round trip after connect).
pub const MAX_UNKNOCKED: usize = 256;

/// A connection without a valid knock is closed at a random moment between
/// these two delays after the knock deadline, whatever it sends, so its
/// closing time tells a prober nothing (like a port that accepts and
/// ignores). Bounded so a stranger's socket does not linger.
pub const STRANGER_LINGER_MIN: Duration = Duration::from_secs(1);
/// See [`STRANGER_LINGER_MIN`].
pub const STRANGER_LINGER_MAX: Duration = Duration::from_secs(8);

/// Reads from a stranger are discarded through this buffer; nothing a
/// stranger sends is ever kept.
const DISCARD_CHUNK: usize = 512;

/// Tunables of a listener; the defaults are the documented constants.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`MAX_PENDING_HANDSHAKES`].
    pub max_pending_handshakes: usize,
    /// See [`KNOCK_TIMEOUT`].
    pub knock_timeout: Duration,
    /// See [`MAX_UNKNOCKED`].
    pub max_unknocked: usize,
    /// See [`STRANGER_LINGER_MIN`].
    pub stranger_linger_min: Duration,
    /// See [`STRANGER_LINGER_MIN`].
    pub stranger_linger_max: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_pending_handshakes: MAX_PENDING_HANDSHAKES,
            knock_timeout: KNOCK_TIMEOUT,
            max_unknocked: MAX_UNKNOCKED,
            stranger_linger_min: STRANGER_LINGER_MIN,
            stranger_linger_max: STRANGER_LINGER_MAX,
        }
    }
}

/// A bound socket serving knocks and pinned handshakes in the background.
pub struct Listener {
    local_addr: SocketAddr,
    authenticated: mpsc::Receiver<SecureStream>,
    // Stops the accept loop and every connection in flight when dropped.
    _stop: DropGuard,
}

impl Listener {
    /// Binds `addr` and starts accepting. Only callers that knock with our
    /// certificate and present a certificate in `pins` get through.
    ///
    /// `[::]:PORT` is one dual-stack socket that takes IPv4 callers too (as
    /// `::ffff:a.b.c.d`); where IPv6 is off it falls back to `0.0.0.0:PORT`.
    pub async fn bind(
        addr: &str,
        identity: &Identity,
        pins: PinSet,
        options: ListenerOptions,
    ) -> Result<Listener, NetError> {
        let bind_err = |source| NetError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let address = tokio::net::lookup_host(addr)
            .await
            .map_err(bind_err)?
            .next()
            .ok_or_else(|| bind_err(io::Error::other("the name resolved to no address")))?;
        let tcp = bind_tcp(address).map_err(bind_err)?;
        let local_addr = tcp.local_addr().map_err(|source| NetError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
        let stop = CancellationToken::new();
        // Capacity 1: an authenticated connection waits (holding its
        // handshake slot) until the application takes it, rather than
        // piling up.
        let (tx, authenticated) = mpsc::channel(1);
        let shared = Arc::new(Shared::new(identity, pins, options, tx)?);
        tokio::spawn(accept_loop(tcp, shared, stop.clone()));
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

/// Pending connections the kernel may queue before we accept them: what
/// std and tokio use, ample since the accept loop never blocks.
const ACCEPT_BACKLOG: i32 = 1024;

/// A UDP socket on `address` (the listener's bound address: one socket
/// for both families when that is `[::]`), for voice datagrams beside the
/// listener's calls (call/voice_path.rs). Non-blocking, and not yet in any
/// async runtime: each call's voice thread takes its own handle to it.
pub fn bind_udp(address: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Binds `address`; the unspecified IPv6 address becomes a dual-stack socket,
/// or the unspecified IPv4 address where IPv6 is unavailable.
fn bind_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    match open_listening_socket(address) {
        Err(error)
            if address.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                && !matches!(
                    error.kind(),
                    io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                ) =>
        {
            let ipv4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, address.port()));
            info!("cannot listen on IPv6 here ({error}); listening on {ipv4} (IPv4 only)");
            open_listening_socket(ipv4)
        }
        result => result,
    }
}

fn open_listening_socket(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        // Explicitly, whatever the system default (net.ipv6.bindv6only):
        // one socket serves both families.
        socket.set_only_v6(false)?;
    }
    // As std and tokio do: a restarted listener can bind again at once
    // while the previous call's connection is in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// What every connection task needs, shared by all of them.
struct Shared {
    acceptor: TlsAcceptor,
    gate: KnockGate,
    rng: SystemRandom,
    pins: PinSet,
    stages: Mutex<Stages>,
    options: ListenerOptions,
    authenticated: mpsc::Sender<SecureStream>,
}

impl Shared {
    fn new(
        identity: &Identity,
        pins: PinSet,
        options: ListenerOptions,
        authenticated: mpsc::Sender<SecureStream>,
    ) -> Result<Self, NetError> {
        let config = tls::server_config(identity, pins.clone())?;
        Ok(Shared {
            acceptor: TlsAcceptor::from(config),
            gate: KnockGate::new(identity.certificate().der().as_ref(), REPLAY_CACHE_CAPACITY),
            rng: SystemRandom::new(),
            pins,
            stages: Mutex::new(Stages {
                next_id: 0,
                unknocked: Stage::new(options.max_unknocked),
                handshaking: Stage::new(options.max_pending_handshakes),
            }),
            options,
            authenticated,
        })
    }

    fn stages(&self) -> std::sync::MutexGuard<'_, Stages> {
        // The critical sections below cannot panic halfway through a change
        // that matters; a poisoned lock still holds consistent maps.
        self.stages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A random delay in `[stranger_linger_min, stranger_linger_max]`.
    fn stranger_linger(&self) -> Duration {
        let (min, max) = (
            self.options.stranger_linger_min,
            self.options
                .stranger_linger_max
                .max(self.options.stranger_linger_min),
        );
        let mut r = [0u8; 4];
        // If the system RNG fails, the longest delay is the safe choice.
        if self.rng.fill(&mut r).is_err() {
            return max;
        }
        let fraction = f64::from(u32::from_be_bytes(r)) / f64::from(u32::MAX);
        min + (max - min).mul_f64(fraction)
    }
}

/// The connections in one stage, by arrival order (ids only grow), each with
/// the token that closes it.
struct Stage {
    capacity: usize,
    members: BTreeMap<u64, CancellationToken>,
}

impl Stage {
    fn new(capacity: usize) -> Self {
        Stage {
            capacity: capacity.max(1),
            members: BTreeMap::new(),
        }
    }

    /// Adds `id`, first closing the oldest members if the stage is full.
    /// Returns how many were closed.
    fn admit(&mut self, id: u64, token: CancellationToken) -> usize {
        let mut evicted = 0;
        while self.members.len() >= self.capacity {
            match self.members.pop_first() {
                Some((_, oldest)) => {
                    oldest.cancel();
                    evicted += 1;
                }
                None => break,
            }
        }
        self.members.insert(id, token);
        evicted
    }
}

struct Stages {
    next_id: u64,
    unknocked: Stage,
    handshaking: Stage,
}

/// Removes a connection from whichever stage holds it when its task ends,
/// however it ends (finished, evicted or listener stopped).
struct LeaveStages {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for LeaveStages {
    fn drop(&mut self) {
        let mut stages = self.shared.stages();
        stages.unknocked.members.remove(&self.id);
        stages.handshaking.members.remove(&self.id);
    }
}

async fn accept_loop(tcp: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = tcp.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            // An IPv4 caller on the dual-stack socket arrives as
            // ::ffff:a.b.c.d; logs and the window show it as a.b.c.d.
            Ok((stream, remote)) => (
                stream,
                SocketAddr::new(remote.ip().to_canonical(), remote.port()),
            ),
            Err(e) => {
                // Usually EMFILE/ENFILE: back off briefly instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let accepted_at = Instant::now();
        // The connection joins the knock stage before its task exists, so
        // the bound holds even if tasks are slow to start.
        let token = stop.child_token();
        let (id, evicted) = {
            let mut stages = shared.stages();
            let id = stages.next_id;
            stages.next_id += 1;
            let evicted = stages.unknocked.admit(id, token.clone());
            (id, evicted)
        };
        if evicted > 0 {
            debug!(
                %remote,
                "{} connections wait for a knock: closed the oldest to make room",
                shared.options.max_unknocked
            );
        }
        let leave = LeaveStages {
            shared: shared.clone(),
            id,
        };
        tokio::spawn(async move {
            let shared = leave.shared.clone();
            tokio::select! {
                _ = token.cancelled() => {}
                _ = serve(&shared, id, stream, remote, accepted_at) => {}
            }
            drop(leave);
        });
    }
}

/// One connection: the knock, then (only if it is valid) the handshake.
async fn serve(
    shared: &Shared,
    id: u64,
    mut tcp: TcpStream,
    remote: SocketAddr,
    accepted_at: Instant,
) {
    super::socket::tune_for_calls(&tcp);
    let knock_deadline = accepted_at + shared.options.knock_timeout;
    let mut knock = [0u8; KNOCK_LEN];
    let verdict = match tokio::time::timeout_at(knock_deadline, tcp.read_exact(&mut knock)).await {
        Err(_) => Err(format!(
            "no valid knock (fewer than {KNOCK_LEN} bytes within {:?})",
            shared.options.knock_timeout
        )),
        // The client closed (or reset) before sending 48 bytes: nothing to
        // stay silent to.
        Ok(Err(e)) => {
            debug!(%remote, "connection closed before its knock: {e}");
            return;
        }
        Ok(Ok(_)) => shared
            .gate
            .admit(&knock, unix_now())
            .map_err(|why| why.to_string()),
    };
    match verdict {
        Ok(()) => {
            if promote(shared, id) {
                // Boxed: the TLS state (several KiB) is allocated only for
                // knocked connections, so a task waiting for its knock stays
                // small (see `a_connection_waiting_for_its_knock_is_small`).
                Box::pin(handshake(shared, tcp, remote)).await;
            }
        }
        Err(why) => {
            // One line per stranger, at debug: scanners are routine noise.
            // The line says what to check in case it was a friend.
            debug!(%remote, "ignoring connection silently: {why}");
            ignore(tcp, knock_deadline + shared.stranger_linger()).await;
        }
    }
}

/// Moves a knocked connection to the handshake stage (closing the oldest
/// handshake if it is full). False if it was evicted meanwhile.
fn promote(shared: &Shared, id: u64) -> bool {
    let mut stages = shared.stages();
    let Some(token) = stages.unknocked.members.remove(&id) else {
        return false;
    };
    if stages.handshaking.admit(id, token) > 0 {
        info!(
            "{} knocked connections are handshaking: closed the oldest to make room",
            shared.options.max_pending_handshakes
        );
    }
    true
}

/// Sends nothing, reads and discards until `until` or until the client
/// closes. No byte a stranger sends is kept, and none is answered.
async fn ignore(mut tcp: TcpStream, until: Instant) {
    let mut sink = [0u8; DISCARD_CHUNK];
    let discard = async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout_at(until, discard).await;
    // Close with a FIN like any idle service would, not an RST; a failure
    // here changes nothing for the stranger.
    let _ = tcp.shutdown().await;
}

async fn handshake(shared: &Shared, tcp: TcpStream, remote: SocketAddr) {
    let timeout = shared.options.handshake_timeout;
    let stream = match tokio::time::timeout(timeout, shared.acceptor.accept(tcp)).await {
        Err(_) => {
            info!(%remote, "closed connection: knocked, but no TLS handshake within {timeout:?}");
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
    let Some(peer) = presented.and_then(|fp| shared.pins.find(&fp)).cloned() else {
        warn!(%remote, "closed connection: handshake finished without a pinned certificate");
        return;
    };
    info!(%remote, peer = %peer.name, "authenticated {} ({})", peer.name, peer.fingerprint().short());
    let secured = SecureStream {
        peer,
        remote,
        stream: stream.into(),
    };
    if shared.authenticated.send(secured).await.is_err() {
        debug!(%remote, "listener closed before the connection was taken");
    }
}

/// One log line per refused connection, at a level matching its meaning:
/// unpinned certificates are worth a warning (someone who knows our
/// certificate tried), other failures after a valid knock are informational.
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
                info!(%remote, "closed connection: not TLS after a valid knock ({source})")
            }
            _ => info!(%remote, "closed connection: handshake failed ({source})"),
        },
        other => info!(%remote, "closed connection: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a connection waiting for its knock costs, for SECURITY.md: its
    /// task's future (the knock buffer, the discard buffer, the socket) and
    /// its entry in the stage. The TLS state is boxed and only exists after a
    /// valid knock.
    #[tokio::test]
    async fn a_connection_waiting_for_its_knock_is_small() {
        let identity = Identity::generate("size").unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let shared = Shared::new(
            &identity,
            PinSet::new(Vec::new()),
            ListenerOptions::default(),
            tx,
        )
        .unwrap();
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (tcp, remote) = server.accept().await.unwrap();
        let task = serve(&shared, 0, tcp, remote, Instant::now());
        let size = std::mem::size_of_val(&task);
        println!("a connection task waiting for its knock: {size} bytes");
        // SECURITY.md states 1.5 KiB per waiting connection, task included.
        assert!(size <= 1280, "{size} bytes");
    }
}
