//! Steady-state allocations of a call's protocol path: frames written by a
//! `MessageWriter` and read by a `MessageReader` over a socket pair, with
//! the reader keeping the previous frame alive as the decoder does. After
//! warm-up, a frame costs no allocation: the receive buffers are pooled,
//! the payload moves as `Bytes`, and the writer reuses its head buffer. A counting global allocator measures it (this test crate
//! needs `unsafe` for `GlobalAlloc`; the library forbids it).

mod protocol_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use protocol_support::{hello, raw_video};
use tokio::net::{TcpListener, TcpStream};
use vchat::protocol::{Accept, Connection, Message, PixelFormat, Role};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the only
// additions are atomic counters, which allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARM_UP: u64 = 20;
const MEASURED: u64 = 200;

// One test function: the counters are global to this binary.
#[tokio::test(flavor = "current_thread")]
async fn a_frame_in_steady_state_allocates_nothing_frame_sized() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (caller, listener) = tokio::join!(TcpStream::connect(addr), server.accept());
    let mut sending = Connection::new(listener.unwrap().0, Role::Listener);
    let mut receiving = Connection::new(caller.unwrap(), Role::Caller);
    receiving
        .write_message(&Message::Hello(hello("Ada")))
        .await
        .unwrap();
    sending.read_message().await.unwrap();
    sending
        .write_message(&Message::Hello(hello("Bea")))
        .await
        .unwrap();
    let version = sending.session().version().unwrap();
    sending
        .write_message(&Message::Accept(Accept { version }))
        .await
        .unwrap();
    receiving.read_message().await.unwrap();
    receiving.read_message().await.unwrap();
    let (_, mut writer) = sending.into_split();
    let (mut reader, _keep_open) = receiving.into_split();

    // One VGA frame, sent over and over, as the bench's pre-generated frames are.
    let frame = raw_video(1, 640, 480, PixelFormat::Rgb24);
    let frame_len = frame.payload.len() as u64;
    let sender = tokio::spawn(async move {
        for seq in 1..=WARM_UP + MEASURED {
            let video = Message::Video(vchat::protocol::Video {
                seq,
                ..frame.clone()
            });
            writer.write_message(&video).await.unwrap();
        }
        writer
    });
    let mut previous = None;
    let mut start = (0, 0);
    for seq in 1..=WARM_UP + MEASURED {
        if seq == WARM_UP + 1 {
            start = (
                ALLOCATIONS.load(Ordering::Relaxed),
                BYTES.load(Ordering::Relaxed),
            );
        }
        match reader.read_message().await.unwrap() {
            Some(Message::Video(video)) => {
                assert_eq!(video.seq, seq);
                assert_eq!(video.payload.len() as u64, frame_len);
                previous = Some(video);
            }
            other => panic!("expected video {seq}, got {other:?}"),
        }
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - start.0;
    let bytes = BYTES.load(Ordering::Relaxed) - start.1;
    drop(previous);
    let _writer = sender.await.unwrap();
    let per_frame = (allocations as f64 / MEASURED as f64, bytes / MEASURED);
    eprintln!(
        "per {frame_len}-byte frame, both ends: {:.2} allocations, {} bytes",
        per_frame.0, per_frame.1
    );
    // Without the receive-buffer pool every frame allocated its own 921,600+
    // bytes; without the writer's reused head buffer, 128 bytes. Measured:
    // none at all. The slack is for the runtime's own bookkeeping.
    assert!(
        bytes <= 64 * 1024,
        "{bytes} bytes allocated over {MEASURED} frames: {per_frame:?} per frame"
    );
    assert!(
        allocations <= MEASURED / 10,
        "{allocations} allocations over {MEASURED} frames"
    );
}
