//! Issue 12's reconnect between two real `vchat` processes: a TCP relay
//! (real sockets) between caller and listener cuts both connections
//! mid-call, without a `bye`; the caller redials through the relay, the
//! listener takes the same peer back, frames flow again within 3 s, and the
//! listener's recording never goes back to a frame from before the cut.

mod common;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{paired_identities, spawn_caller, spawn_listener};
use vchat::media::{read_frame_number, Decoder, EncodedPicture, Picture, PictureFormat, Y4mReader};
use vchat::protocol::PixelFormat;

/// Hang guard for the whole call.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// Issue 12: frames flow again within this after the cut.
const BACK_WITHIN: Duration = Duration::from_secs(3);

/// How often the test looks at the recording while it waits for it.
const POLL: Duration = Duration::from_millis(10);

/// Accepts connections and relays each to `target`, both ways, until cut.
struct Relay {
    addr: SocketAddr,
    /// Both sockets of every relayed connection, for [`Relay::cut`].
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections relayed so far.
    relayed: Arc<AtomicUsize>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let relayed = Arc::new(AtomicUsize::new(0));
        let (all, count) = (sockets.clone(), relayed.clone());
        // Runs for the rest of the test process: a blocked accept has no
        // other way out, and it holds nothing the test waits for.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let mut all = all.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                drop(all);
                copy_in_thread(client.try_clone().unwrap(), server.try_clone().unwrap());
                copy_in_thread(server, client);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        Relay {
            addr,
            sockets,
            relayed,
        }
    }

    /// Ends every connection relayed so far, both ways, as a network that
    /// fails would: no `bye`, no close_notify, just the end of the stream.
    fn cut(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn relayed(&self) -> usize {
        self.relayed.load(Ordering::SeqCst)
    }
}

fn copy_in_thread(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The test pattern's frame numbers in a recording that may still be
/// written to: a frame cut short at the end is not counted.
fn recorded_numbers(path: &Path) -> Vec<u64> {
    let mut reader = match Y4mReader::open(path) {
        Ok(reader) => reader,
        // Not created yet, or its header not written yet.
        Err(_) => return Vec::new(),
    };
    let (width, height) = (reader.header().width, reader.header().height);
    let mut frame = Picture::empty(PictureFormat::I420);
    let mut decoder = Decoder::new();
    let mut numbers = Vec::new();
    while let Ok(true) = reader.read_frame_into(&mut frame) {
        let rgb = decoder
            .decode(
                EncodedPicture::new(PixelFormat::I420, width, height, frame.data()),
                PictureFormat::Rgb24,
            )
            .unwrap();
        numbers.push(read_frame_number(&rgb).expect("frame number readable in recording"));
    }
    numbers
}

/// Polls until `done` holds, failing the test after `limit`.
fn poll_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(POLL);
    }
}

#[test]
fn a_cut_link_is_redialled_and_frames_flow_again_without_a_frame_twice() {
    let (a, b) = paired_identities();
    let rec = a.path().join("received-by-a.y4m");
    let video = ["--codec", "raw", "--size", "160x120", "--fps", "30"];
    let mut listener_args = vec!["--headless", "--source", "test"];
    listener_args.extend_from_slice(&video);
    listener_args.extend_from_slice(&["--record", rec.to_str().unwrap()]);
    let (listener, addr) = spawn_listener(a.path(), &listener_args, &[]);
    let relay = Relay::start(addr.parse().unwrap());
    let mut caller_args = vec!["--headless", "--source", "test", "--duration", "6"];
    caller_args.extend_from_slice(&video);
    let caller = spawn_caller(b.path(), &relay.addr.to_string(), &caller_args, &[]);

    poll_until("the first frames recorded", CALL_LIMIT, || {
        recorded_numbers(&rec).len() >= 10
    });
    relay.cut();
    let cut = Instant::now();
    // Once the redial has come through the relay, nothing from before the
    // cut can still be on its way: what was recorded by then is the past.
    poll_until("the redial through the relay", BACK_WITHIN, || {
        relay.relayed() >= 2
    });
    let before = *recorded_numbers(&rec).last().unwrap();
    poll_until("a frame after the cut", BACK_WITHIN, || {
        recorded_numbers(&rec).last().is_some_and(|&n| n > before)
    });
    let back_after = cut.elapsed();
    eprintln!("frames flowed again {back_after:?} after the cut");
    assert!(back_after < BACK_WITHIN, "{back_after:?}");

    let listener = listener.finish(CALL_LIMIT);
    let caller = caller.finish(CALL_LIMIT);
    assert!(listener.status.success(), "{}", listener.all_output());
    assert!(caller.status.success(), "{}", caller.all_output());
    assert_eq!(relay.relayed(), 2, "one call, one reconnect");

    // The recorder fills time without a new frame with the previous one
    // (the recording plays at the call's speed), so a number may repeat
    // in a row; a frame from before the cut never comes back after a
    // newer one.
    let numbers = recorded_numbers(&rec);
    for pair in numbers.windows(2) {
        assert!(pair[0] <= pair[1], "a frame came back: {numbers:?}");
    }
    assert!(
        numbers.iter().filter(|&&n| n > before).count() >= 30,
        "about 2 s of frames after the reconnect: {numbers:?}"
    );
}
