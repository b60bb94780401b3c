//! A TCP relay between a caller and a listener, on real sockets, that a test
//! can cut (every relayed connection ends at once, as when a network fails:
//! no `bye`, no close_notify) and hold (new connections are closed on
//! arrival, as when the peer is unreachable), to drive reconnects. Or a
//! narrow link: caller-to-listener bytes paced to a rate, with a small
//! receive buffer, so the backlog forms on the caller's side as it does
//! behind a slow uplink.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The throttled relay's receive buffer (the kernel doubles it): what the
/// narrow link itself holds, like a router's queue of a few hundred ms.
const NARROW_RCVBUF: usize = 32 * 1024;

/// Accepts connections and relays each to `target`, both ways, until cut.
pub struct Relay {
    pub addr: SocketAddr,
    /// Both sockets of every relayed connection, for [`Relay::cut`].
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections relayed so far.
    relayed: Arc<AtomicUsize>,
    /// Connections closed on arrival while held.
    refused: Arc<AtomicUsize>,
    holding: Arc<AtomicBool>,
    /// A narrow link carries nothing until then (an outage, a stalled hop).
    stalled_until: Arc<Mutex<Option<Instant>>>,
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        Self::start_with(TcpListener::bind("127.0.0.1:0").unwrap(), target, None)
    }

    /// A narrow link: bytes from the caller reach the listener at
    /// `bytes_per_second` at most; the other way is not limited.
    pub fn start_throttled(target: SocketAddr, bytes_per_second: u64) -> Relay {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(NARROW_RCVBUF).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(16).unwrap();
        Self::start_with(socket.into(), target, Some(bytes_per_second))
    }

    fn start_with(listener: TcpListener, target: SocketAddr, rate: Option<u64>) -> Relay {
        let addr = listener.local_addr().unwrap();
        let relay = Relay {
            addr,
            sockets: Arc::default(),
            relayed: Arc::default(),
            refused: Arc::default(),
            holding: Arc::default(),
            stalled_until: Arc::default(),
        };
        let (all, relayed) = (relay.sockets.clone(), relay.relayed.clone());
        let (refused, holding) = (relay.refused.clone(), relay.holding.clone());
        let stalled_until = relay.stalled_until.clone();
        // Runs for the rest of the test process: a blocked accept has no
        // other way out, and it holds nothing the test waits for.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if holding.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    refused.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let mut all = all.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                drop(all);
                copy_in_thread(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    rate.map(|rate| (rate, stalled_until.clone())),
                );
                copy_in_thread(server, client, None);
                relayed.fetch_add(1, Ordering::SeqCst);
            }
        });
        relay
    }

    /// Ends every connection relayed so far, both ways.
    pub fn cut(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Cuts, and closes every new connection on arrival until [`Relay::release`].
    pub fn cut_and_hold(&self) {
        self.holding.store(true, Ordering::SeqCst);
        self.cut();
    }

    /// Relays new connections again.
    pub fn release(&self) {
        self.holding.store(false, Ordering::SeqCst);
    }

    /// A narrow link carries nothing caller-to-listener for `outage`,
    /// from now: the caller's bytes back up as behind a stalled hop.
    pub fn stall(&self, outage: Duration) {
        *self.stalled_until.lock().unwrap() = Some(Instant::now() + outage);
    }

    /// Connections relayed so far.
    pub fn relayed(&self) -> usize {
        self.relayed.load(Ordering::SeqCst)
    }

    /// Connections closed on arrival while held: redials that found no way through.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until either ends; with a rate, in small pieces
/// each sent no earlier than the rate allows (sleeping here paces a link,
/// it synchronises nothing).
fn copy_in_thread(
    mut from: TcpStream,
    mut to: TcpStream,
    rate: Option<(u64, Arc<Mutex<Option<Instant>>>)>,
) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        match rate {
            None => {
                let _ = std::io::copy(&mut from, &mut to);
            }
            Some((bytes_per_second, stalled_until)) => {
                // A token bucket 20 ms deep: a quiet spell does not save up
                // credit for a later burst above the rate, as no link does.
                let burst = Duration::from_millis(20);
                let mut free_at = Instant::now();
                let mut piece = [0u8; 1500];
                while let Ok(n @ 1..) = from.read(&mut piece) {
                    let stall = *stalled_until.lock().unwrap();
                    if let Some(wait) =
                        stall.and_then(|until| until.checked_duration_since(Instant::now()))
                    {
                        std::thread::sleep(wait);
                    }
                    let now = Instant::now();
                    free_at = free_at.max(now.checked_sub(burst).unwrap_or(now))
                        + Duration::from_secs_f64(n as f64 / bytes_per_second as f64);
                    if let Some(wait) = free_at.checked_duration_since(now) {
                        std::thread::sleep(wait);
                    }
                    if to.write_all(&piece[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A UDP forwarder beside a [`Relay`], on the same port number (where a
/// caller sends voice datagrams: the number of the TCP port it called), to
/// the listener's UDP socket; it sends the listener's datagrams back to
/// wherever the caller's last one came from. A test can cut it (every
/// datagram dropped, both ways, as behind a firewall that stopped passing
/// UDP) and restore it.
pub struct UdpRelay {
    cut: Arc<AtomicBool>,
    /// Datagrams forwarded, both ways.
    forwarded: Arc<AtomicUsize>,
}

impl UdpRelay {
    /// Forwards `127.0.0.1:port` to `target`; `None` if that UDP port is
    /// taken (the caller of this picks another relay).
    pub fn start(port: u16, target: SocketAddr) -> Option<UdpRelay> {
        let front = std::net::UdpSocket::bind(("127.0.0.1", port)).ok()?;
        let back = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(target).unwrap();
        let relay = UdpRelay {
            cut: Arc::default(),
            forwarded: Arc::default(),
        };
        let caller: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (front2, back2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let (cut, forwarded, caller2) =
            (relay.cut.clone(), relay.forwarded.clone(), caller.clone());
        // Both threads run for the rest of the test process, like Relay's.
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((len, from)) = front.recv_from(&mut buf) {
                *caller2.lock().unwrap() = Some(from);
                if !cut.load(Ordering::SeqCst) {
                    let _ = back.send(&buf[..len]);
                    forwarded.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let (cut, forwarded) = (relay.cut.clone(), relay.forwarded.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                let len = match back2.recv(&mut buf) {
                    Ok(len) => len,
                    // The listener's port closed (the call ended): an ICMP
                    // error, not the end of the relay.
                    Err(_) => continue,
                };
                let to = *caller.lock().unwrap();
                if let (Some(to), false) = (to, cut.load(Ordering::SeqCst)) {
                    let _ = front2.send_to(&buf[..len], to);
                    forwarded.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Some(relay)
    }

    /// Drops every datagram, both ways, until [`UdpRelay::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Datagrams forwarded so far, both ways.
    pub fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}
