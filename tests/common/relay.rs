//! A TCP relay between a caller and a listener, on real sockets, that a test
//! can cut (every relayed connection ends at once, as when a network fails:
//! no `bye`, no close_notify) and hold (new connections are closed on
//! arrival, as when the peer is unreachable), to drive reconnects.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let relay = Relay {
            addr,
            sockets: Arc::default(),
            relayed: Arc::default(),
            refused: Arc::default(),
            holding: Arc::default(),
        };
        let (all, relayed) = (relay.sockets.clone(), relay.relayed.clone());
        let (refused, holding) = (relay.refused.clone(), relay.holding.clone());
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
                copy_in_thread(client.try_clone().unwrap(), server.try_clone().unwrap());
                copy_in_thread(server, client);
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

    /// Connections relayed so far.
    pub fn relayed(&self) -> usize {
        self.relayed.load(Ordering::SeqCst)
    }

    /// Connections closed on arrival while held: redials that found no way through.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

fn copy_in_thread(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
