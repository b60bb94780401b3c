//! The voice's UDP path: our packets in datagrams beside the TLS stream,
//! while the path works both ways; the stream carries them otherwise.
//!
//! Why: in the stream a lost segment holds back every byte behind it for a
//! round trip or a retransmission timeout, and on the 1 % loss lab link that
//! made 8-12 gaps of 70-860 ms a minute. Datagrams are independent, and each
//! repeats the two packets before it, so a packet is lost only when three
//! datagrams in a row are (protocol/datagram.rs has the format and why it
//! needs no handshake of its own).
//!
//! How the path is found, with nothing new to configure:
//! - The listener's UDP socket has the number of its TCP port (one number
//!   to forward on a router). The caller sends keepalives (empty
//!   datagrams) to it from the start of each link: ten a second for three
//!   seconds, then one a second, for as long as no answer comes.
//! - The listener answers the address its newest authentic datagram came
//!   from (so a NAT that changes the caller's port is followed); it never
//!   sends to an address that has not proved the call's key.
//! - Every datagram carries the highest counter received from the peer.
//!   A side sends voice by datagram only while it has heard the peer within
//!   [`LIVENESS`] and the peer's ack moved within it: the path works both
//!   ways. Otherwise voice goes in the stream, as before, and the peer takes
//!   it from either (the playout drops the second copy of a packet).
//! - A path that has been quiet for [`DOUBT`] is in doubt: each packet
//!   goes both ways (datagram and stream) until the path speaks again or,
//!   after [`LIVENESS`], is given up. So a path that stops (a firewall, a
//!   NAT that forgot us) costs about [`DOUBT`] of voice, and a lossy path
//!   gets the stream's copy of what a burst of loss took. Keepalives go on
//!   and bring the path back when it returns.
//!
//! Routes whose far end has no UDP (Tor, a SOCKS proxy) never start it.
//!
//! The path runs on a thread of its own ("vchat-voice") with a
//! single-threaded runtime, not on the call's: 50 packets a second each
//! way wake one thread about twice per packet, where they woke the call's
//! two network threads (which then woke each other to share the work)
//! about 150 times a second each. In 20 s windows of a call the listener's
//! network threads took 0.75-1.2 % of a core with voice before, 0.25-0.35 %
//! after, and this thread 0.45-0.6 % (BENCHMARKS.md, "CPU for voice").
//! And a voice packet never waits behind a video frame's encryption on the
//! same thread.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::link::older_than;
use super::pipeline::Shared;
use super::stats::{unix_micros, Counters};
use crate::net::voice_datagram_keys;
use crate::protocol::datagram::{
    decode_audio_body, encode_audio_body, open, seal, DatagramError, DatagramKeys, ReplayWindow,
    DATAGRAM_HEADER_LEN, DATAGRAM_TAG_LEN, MAX_DATAGRAM_LEN, MAX_REPEATS,
};
use crate::protocol::limits::VOICE_DATAGRAMS_VERSION;
use crate::protocol::{Audio, Connection};

/// How a call's voice may leave the TLS stream (`--no-udp`: never).
#[derive(Debug, Clone, Default)]
pub enum VoiceDatagrams {
    /// Voice stays in the stream: `--no-udp`, a route through Tor or a
    /// SOCKS proxy (the far end's UDP is out of reach), the bench.
    #[default]
    Off,
    /// We called: the listener's UDP port has its TCP port's number.
    Dial,
    /// We listen: the socket bound beside the TCP listener (each link's
    /// thread takes its own handle to it, in its own runtime).
    Answer(Arc<std::net::UdpSocket>),
}

/// A path is usable only if the peer was heard, and heard us, within this.
pub const LIVENESS: Duration = Duration::from_millis(1000);

/// With nothing else to send on a usable path, a keepalive this often, so
/// that a silence of [`DOUBT`] means something (about 5 kbit/s each way,
/// only while no voice flows).
const KEEPALIVE: Duration = Duration::from_millis(100);

/// A usable path not heard from (or not acking us) for this long is in
/// doubt: our packets go by datagram and in the stream, so a path that has
/// died costs this much voice rather than all of [`LIVENESS`].
pub const DOUBT: Duration = Duration::from_millis(300);

/// While the path is being found (or the peer is heard but has not heard
/// us yet): a keepalive this often...
const PROBE: Duration = Duration::from_millis(100);

/// ...for this long after the link starts, then...
const PROBE_FAST_FOR: Duration = Duration::from_secs(3);

/// ...this often, for a path that does not answer.
const PROBE_SLOW: Duration = Duration::from_secs(1);

/// A packet is repeated in later datagrams only while it is this young
/// (the playout would have concealed it by then).
const REPEAT_SPAN_US: u64 = 100_000;

/// The path as one end knows it: counters and times, no I/O (time is
/// passed in), so the rules are tested alone.
#[derive(Debug)]
pub(super) struct PathState {
    started: Instant,
    /// The counter of our next datagram (from 1).
    next_counter: u64,
    /// The highest counter received from the peer: our ack.
    received_highest: u64,
    last_received: Option<Instant>,
    /// The peer's latest ack, and when it last moved.
    peer_ack: u64,
    peer_ack_moved: Option<Instant>,
    last_sent: Option<Instant>,
}

impl PathState {
    pub(super) fn new(now: Instant) -> Self {
        PathState {
            started: now,
            next_counter: 1,
            received_highest: 0,
            last_received: None,
            peer_ack: 0,
            peer_ack_moved: None,
            last_sent: None,
        }
    }

    /// An authentic datagram arrived; true if it is the newest so far
    /// (its source is then where the peer is).
    pub(super) fn received(&mut self, now: Instant, counter: u64, ack: u64) -> bool {
        self.last_received = Some(now);
        // An ack above anything we sent is a bug or an attack: ignored.
        if ack > self.peer_ack && ack < self.next_counter {
            self.peer_ack = ack;
            self.peer_ack_moved = Some(now);
        }
        let newest = counter > self.received_highest;
        self.received_highest = self.received_highest.max(counter);
        newest
    }

    /// The counter and ack for a datagram sent now.
    pub(super) fn next_datagram(&mut self, now: Instant) -> (u64, u64) {
        let counter = self.next_counter;
        self.next_counter += 1;
        self.last_sent = Some(now);
        (counter, self.received_highest)
    }

    fn within(at: Option<Instant>, now: Instant, span: Duration) -> bool {
        at.is_some_and(|at| now.saturating_duration_since(at) < span)
    }

    /// Whether voice goes by datagram: the path worked both ways lately.
    pub(super) fn usable(&self, now: Instant) -> bool {
        Self::within(self.last_received, now, LIVENESS)
            && Self::within(self.peer_ack_moved, now, LIVENESS)
    }

    /// Whether a usable path has been quiet for [`DOUBT`]: packets go both
    /// ways until it speaks again or stops being usable.
    pub(super) fn in_doubt(&self, now: Instant) -> bool {
        self.usable(now)
            && !(Self::within(self.last_received, now, DOUBT)
                && Self::within(self.peer_ack_moved, now, DOUBT))
    }

    /// When the next keepalive is due, as things stand at `now` (the
    /// sender knows where the peer is): at once if nothing was sent yet.
    pub(super) fn keepalive_at(&self, now: Instant) -> Instant {
        let every = if self.usable(now) {
            KEEPALIVE
        } else if now.saturating_duration_since(self.started) < PROBE_FAST_FOR
            || Self::within(self.last_received, now, LIVENESS)
        {
            PROBE
        } else {
            PROBE_SLOW
        };
        self.last_sent.map_or(now, |sent| sent + every)
    }

    /// Whether a keepalive is due now.
    pub(super) fn keepalive_due(&self, now: Instant) -> bool {
        self.keepalive_at(now) <= now
    }
}

/// The peer's end of the path: fixed for the caller (a connected socket),
/// learnt from authentic datagrams for the listener.
enum Peer {
    Connected,
    Learnt(Option<SocketAddr>),
}

/// Runs the path for one link until `token` (the link's) is cancelled:
/// keepalives, our voice while the path is usable, the peer's voice into
/// the playout. `socket` is connected to the listener on the caller's side
/// (`connected`), a handle to the listener's own socket on the listener's.
pub(super) async fn run(
    socket: UdpSocket,
    connected: bool,
    keys: DatagramKeys,
    shared: Arc<Shared>,
    token: CancellationToken,
) {
    let voice = &shared.voice;
    let mut path = PathState::new(Instant::now());
    let mut window = ReplayWindow::default();
    let mut peer = if connected {
        Peer::Connected
    } else {
        Peer::Learnt(None)
    };
    // Sent lately, to repeat in the next datagrams.
    let mut recent: VecDeque<Audio> = VecDeque::with_capacity(MAX_REPEATS + 1);
    // One byte more than the largest datagram, to tell one that is too long.
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1];
    let mut told_refused = false;
    let _down = PathDown(&shared);
    // One timer for the task's life, moved to each next keepalive, rather
    // than a new one registered for every packet.
    let keepalive_timer = tokio::time::sleep(PROBE);
    tokio::pin!(keepalive_timer);
    loop {
        let now = Instant::now();
        let knows_peer = !matches!(peer, Peer::Learnt(None));
        let up = knows_peer && path.usable(now);
        // Woken for the next keepalive only: while voice flows none is due,
        // and the thread sleeps between packets. A listener that has not
        // heard the caller yet has nobody to send to.
        let wake = match knows_peer {
            true => path.keepalive_at(now),
            false => now + PROBE_SLOW,
        };
        if keepalive_timer.deadline() != wake.into() {
            keepalive_timer.as_mut().reset(wake.into());
        }
        if voice.set_path_up(up) {
            match up {
                true => info!("voice goes by UDP datagrams now (the TLS stream carries the rest)"),
                false => warn!(
                    "voice datagrams stopped coming through; voice goes in the TLS stream again"
                ),
            }
        }
        tokio::select! {
            biased;
            () = token.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    let Some(datagram) = buf.get(..len) else { continue };
                    match open(&keys.receive, &mut window, datagram) {
                        Ok(opened) => {
                            if path.received(Instant::now(), opened.counter, opened.ack) {
                                if let Peer::Learnt(at) = &mut peer {
                                    if *at != Some(from) {
                                        debug!(%from, "voice datagrams come from {from}");
                                    }
                                    *at = Some(from);
                                }
                            }
                            take_voice(&shared, opened.body);
                            // The first answer goes at once, not at the
                            // next tick: the path is up a tick sooner.
                            if path.keepalive_due(Instant::now()) {
                                keepalive(&socket, &peer, &keys, &mut path).await;
                            }
                        }
                        Err(e) => refused(&shared, &e, from),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    // The listener's host said its UDP port is closed
                    // (`--no-udp`, or a TCP-only forward or relay).
                    if !told_refused {
                        told_refused = true;
                        info!("the peer takes no voice datagrams (its UDP port is closed); voice stays in the TLS stream");
                    }
                }
                Err(e) => debug!("voice datagram not received: {e}"),
            },
            audio = voice.queue.take(), if up => {
                let Some(audio) = audio else { return };
                if older_than(audio.capture_time_us, shared.max_latency) {
                    Counters::add(&voice.dropped_out, 1);
                    continue;
                }
                if path.in_doubt(Instant::now()) {
                    voice.stream_copies.push(audio.clone());
                }
                send_voice(&socket, &peer, &keys, &mut path, &mut recent, audio, &shared).await;
            }
            () = &mut keepalive_timer => {
                if knows_peer && path.keepalive_due(Instant::now()) {
                    keepalive(&socket, &peer, &keys, &mut path).await;
                }
            }
        }
    }
}

/// Marks the path down when the link's task ends (a new link starts its own).
struct PathDown<'a>(&'a Shared);

impl Drop for PathDown<'_> {
    fn drop(&mut self) {
        self.0.voice.set_path_up(false);
    }
}

async fn keepalive(socket: &UdpSocket, peer: &Peer, keys: &DatagramKeys, path: &mut PathState) {
    let (counter, ack) = path.next_datagram(Instant::now());
    send(socket, peer, &seal(&keys.send, counter, ack, &[])).await;
}

async fn send(socket: &UdpSocket, peer: &Peer, datagram: &[u8]) {
    let sent = match peer {
        Peer::Connected => socket.send(datagram).await,
        Peer::Learnt(Some(addr)) => socket.send_to(datagram, addr).await,
        Peer::Learnt(None) => return,
    };
    if let Err(e) = sent {
        debug!("voice datagram not sent: {e}");
    }
}

/// Sends `audio` with the packets just before it, as many as fit.
async fn send_voice(
    socket: &UdpSocket,
    peer: &Peer,
    keys: &DatagramKeys,
    path: &mut PathState,
    recent: &mut VecDeque<Audio>,
    audio: Audio,
    shared: &Shared,
) {
    let voice = &shared.voice;
    recent.retain(|r| audio.capture_time_us.saturating_sub(r.capture_time_us) <= REPEAT_SPAN_US);
    let mut packets: Vec<&Audio> = recent.iter().collect();
    packets.push(&audio);
    let body = loop {
        match encode_audio_body(&packets) {
            Ok(body) if DATAGRAM_HEADER_LEN + body.len() + DATAGRAM_TAG_LEN <= MAX_DATAGRAM_LEN => {
                break Some(body)
            }
            // Too long with the repeats: fewer of them.
            Ok(_) if packets.len() > 1 => {
                packets.remove(0);
            }
            Ok(_) | Err(_) => break None,
        }
    };
    let Some(body) = body else {
        // Our encoder's packets always fit (MAX_VOICE_PACKET_LEN).
        warn!(
            "a voice packet of {} bytes does not fit a datagram",
            audio.payload.len()
        );
        Counters::add(&voice.dropped_out, 1);
        return;
    };
    let (counter, ack) = path.next_datagram(Instant::now());
    send(socket, peer, &seal(&keys.send, counter, ack, &body)).await;
    Counters::add(&voice.packets_sent, 1);
    Counters::add(&voice.bytes_sent, audio.payload.len() as u64);
    Counters::add(&voice.udp_packets_out, 1);
    if recent.len() == MAX_REPEATS {
        recent.pop_front();
    }
    recent.push_back(audio);
}

/// The peer's packets from an authentic datagram, into the playout.
fn take_voice(shared: &Shared, body: bytes::Bytes) {
    let voice = &shared.voice;
    match decode_audio_body(body) {
        Ok(packets) => {
            for audio in packets {
                let (seq, capture_us) = (audio.seq, audio.capture_time_us);
                if voice.receive(audio) {
                    // For a lab run's timeline (RUST_LOG=vchat::call::voice_path=trace).
                    let transit = unix_micros(SystemTime::now()) as i64 - capture_us as i64;
                    tracing::trace!(seq, transit_us = transit, "voice packet by datagram");
                    Counters::add(&voice.udp_packets_in, 1);
                }
            }
        }
        // Authentic but not what the protocol allows: the peer's bug.
        Err(e) => {
            Counters::add(&voice.udp_refused, 1);
            debug!("a voice datagram refused: {e}");
        }
    }
}

fn refused(shared: &Shared, error: &DatagramError, from: SocketAddr) {
    Counters::add(&shared.voice.udp_refused, 1);
    debug!(%from, "a datagram refused: {error}");
}

/// The path's task for a new link on `connection`, if this call's voice
/// may go by datagram: the route allows it, the call speaks a version
/// with datagrams, voice flows at least one way, and the stream is TLS over
/// TCP (whose session gives the keys, and whose peer address the caller
/// aims at).
pub(super) fn task_for<S: 'static>(
    connection: &Connection<S>,
    route: &VoiceDatagrams,
    shared: &Arc<Shared>,
    token: CancellationToken,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let speaks = connection
        .session()
        .version()
        .is_some_and(|v| v >= VOICE_DATAGRAMS_VERSION);
    let voice_flows = shared.voice.send_format.is_some() || shared.voice.playout.is_some();
    if matches!(route, VoiceDatagrams::Off) || !speaks || !voice_flows {
        return None;
    }
    let stream: &dyn std::any::Any = connection.get_ref();
    let tls = stream.downcast_ref::<tokio_rustls::TlsStream<tokio::net::TcpStream>>()?;
    let keys = voice_datagram_keys(tls)?;
    let listener = tls.get_ref().0.peer_addr().ok()?;
    let route = route.clone();
    let shared = shared.clone();
    Some(async move {
        // The link's tasks wait for this one: it ends when the thread does
        // (or the thread's end is dropped, if it panicked).
        let (done, ended) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vchat-voice".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        warn!("no runtime for the voice datagrams ({e}); voice stays in the TLS stream");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let Some((socket, connected)) = path_socket(route, listener).await else {
                        return;
                    };
                    run(socket, connected, keys, shared, token).await;
                });
                let _ = done.send(());
            });
        match thread {
            Ok(_) => {
                let _ = ended.await;
            }
            Err(e) => {
                warn!("no thread for the voice datagrams ({e}); voice stays in the TLS stream")
            }
        }
    })
}

/// This link's socket for the path, in the runtime of the thread that
/// calls it: the caller's own, connected to `listener`, or a handle to the
/// listener's; `None` (said in the log) if there is none.
async fn path_socket(route: VoiceDatagrams, listener: SocketAddr) -> Option<(UdpSocket, bool)> {
    match route {
        VoiceDatagrams::Answer(socket) => {
            let handle = socket
                .try_clone()
                .and_then(UdpSocket::from_std)
                .map_err(|e| {
                    warn!("cannot use the voice UDP socket ({e}); voice stays in the TLS stream")
                })
                .ok()?;
            Some((handle, false))
        }
        VoiceDatagrams::Dial => match dial_socket(listener).await {
            Ok(socket) => Some((socket, true)),
            Err(e) => {
                info!("no UDP socket toward {listener} ({e}); voice stays in the TLS stream");
                None
            }
        },
        VoiceDatagrams::Off => None,
    }
}

/// Opens the caller's socket toward the listener: the address of the TLS
/// connection, with the same port number.
pub(super) async fn dial_socket(listener: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = match listener {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(listener).await?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_path_is_usable_only_when_it_works_both_ways() {
        let t0 = Instant::now();
        let mut path = PathState::new(t0);
        assert!(!path.usable(t0));
        let (counter, ack) = path.next_datagram(t0);
        assert_eq!((counter, ack), (1, 0));
        // Heard the peer, but it has not heard us: not yet.
        path.received(t0 + ms(10), 1, 0);
        assert!(!path.usable(t0 + ms(10)));
        // Its ack names our datagram: both ways.
        path.received(t0 + ms(60), 2, 1);
        assert!(path.usable(t0 + ms(60)));
        // Our next datagram's ack is what we heard.
        assert_eq!(path.next_datagram(t0 + ms(70)), (2, 2));
        // The peer still talks but stops hearing us: the ack stands still.
        for n in 3..30 {
            path.received(t0 + ms(60 + n * 40), n, 1);
        }
        assert!(!path.usable(t0 + ms(60 + 29 * 40)));
        // Or goes silent altogether.
        let mut quiet = PathState::new(t0);
        quiet.next_datagram(t0);
        quiet.received(t0, 1, 1);
        assert!(quiet.usable(t0 + ms(999)));
        assert!(!quiet.usable(t0 + LIVENESS));
    }

    #[test]
    fn a_quiet_path_is_in_doubt_before_it_is_given_up() {
        let t0 = Instant::now();
        let mut path = PathState::new(t0);
        path.next_datagram(t0);
        path.received(t0, 1, 1);
        assert!(!path.in_doubt(t0 + ms(200)));
        assert!(path.in_doubt(t0 + DOUBT));
        assert!(path.usable(t0 + DOUBT));
        // Heard again: no doubt.
        path.next_datagram(t0 + ms(400));
        path.received(t0 + ms(450), 2, 2);
        assert!(!path.in_doubt(t0 + ms(500)));
        // Heard, but our datagrams are not acked: doubt all the same.
        for n in 3..10 {
            path.received(t0 + ms(450 + n * 50), n, 2);
        }
        assert!(path.in_doubt(t0 + ms(450 + 9 * 50)));
        // Given up: no longer usable, so no longer "in doubt" either.
        assert!(!path.in_doubt(t0 + ms(450) + LIVENESS));
    }

    #[test]
    fn an_ack_of_a_datagram_never_sent_is_ignored() {
        let t0 = Instant::now();
        let mut path = PathState::new(t0);
        path.next_datagram(t0);
        path.received(t0, 1, 1_000);
        assert!(!path.usable(t0));
    }

    #[test]
    fn only_a_newer_counter_moves_the_peer() {
        let t0 = Instant::now();
        let mut path = PathState::new(t0);
        assert!(path.received(t0, 5, 0));
        assert!(!path.received(t0, 3, 0));
        assert!(path.received(t0, 6, 0));
    }

    #[test]
    fn keepalives_come_fast_while_finding_the_path_then_slow() {
        let t0 = Instant::now();
        let mut path = PathState::new(t0);
        assert!(path.keepalive_due(t0));
        path.next_datagram(t0);
        assert!(!path.keepalive_due(t0 + ms(50)));
        assert!(path.keepalive_due(t0 + PROBE));
        // The path's thread sleeps until then.
        assert_eq!(path.keepalive_at(t0 + ms(50)), t0 + PROBE);
        // No answer after the fast probing: once a second.
        let late = t0 + PROBE_FAST_FOR + ms(10);
        path.next_datagram(late);
        assert!(!path.keepalive_due(late + ms(500)));
        assert!(path.keepalive_due(late + PROBE_SLOW));
        assert_eq!(path.keepalive_at(late + ms(500)), late + PROBE_SLOW);
        // A usable path: a keepalive every KEEPALIVE when nothing else goes.
        let at = late + PROBE_SLOW;
        path.next_datagram(at);
        path.received(at, 1, 2);
        assert!(path.usable(at));
        assert!(!path.keepalive_due(at + ms(50)));
        assert!(path.keepalive_due(at + KEEPALIVE));
        // Voice going out puts the next keepalive off: no wake per packet.
        path.next_datagram(at + ms(20));
        assert_eq!(path.keepalive_at(at + ms(30)), at + ms(20) + KEEPALIVE);
    }
}
