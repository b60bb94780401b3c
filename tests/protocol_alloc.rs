//! Hostile inputs must be refused without a large allocation: a counting
//! global allocator records the largest single allocation made while each
//! input is decoded. (This test crate needs `unsafe` for `GlobalAlloc`; the
//! library itself forbids it.)

mod protocol_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use protocol_support::frame;
use vchat::protocol::decode_frame;

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the only
// addition is an atomic maximum, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// No allocation made while refusing hostile input may exceed this.
const SMALL: usize = 64 * 1024;

fn cbor(kind: &str, tail: &[u8]) -> Vec<u8> {
    let mut c = vec![0x82, 0x60 | kind.len() as u8];
    c.extend_from_slice(kind.as_bytes());
    c.extend_from_slice(tail);
    c
}

// One test function: the allocator's maximum is global, so nothing else in
// this binary may run at the same time.
#[test]
fn hostile_inputs_are_refused_without_large_allocations() {
    let hostile: Vec<(&str, BytesMut)> = vec![
        (
            "prefix 0xFFFFFFFF",
            BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]),
        ),
        (
            "payload declaring 2^64-1 bytes",
            frame(&cbor(
                "video",
                b"\xa1\x67payload\x5b\xff\xff\xff\xff\xff\xff\xff\xff",
            )),
        ),
        (
            "payload declaring 20 MB in a 30-byte frame",
            frame(&cbor("video", b"\xa1\x67payload\x5a\x01\x31\x2d\x00")),
        ),
        (
            "body map declaring 2^64-1 entries",
            frame(&cbor("ping", b"\xbb\xff\xff\xff\xff\xff\xff\xff\xff")),
        ),
        (
            "unknown field array declaring 2^32-1 items",
            frame(&cbor("wave", b"\xa1\x61x\x9a\xff\xff\xff\xff")),
        ),
        (
            "unknown field text declaring 2^32-1 bytes",
            frame(&cbor("wave", b"\xa1\x61x\x7a\xff\xff\xff\xff")),
        ),
        (
            "codec list declaring a million entries",
            frame(&cbor(
                "hello",
                b"\xa1\x67receive\xa1\x66codecs\x9a\x00\x0f\x42\x40",
            )),
        ),
        (
            "10,000 nested arrays",
            frame(&cbor(
                "wave",
                &[&b"\xa1\x61x"[..], &[0x81; 10_000], &[0x00]].concat(),
            )),
        ),
        (
            "10,000 nested tags",
            frame(&cbor(
                "wave",
                &[&b"\xa1\x61x"[..], &[0xc6; 10_000], &[0x00]].concat(),
            )),
        ),
    ];
    for (name, mut buf) in hostile {
        LARGEST.store(0, Ordering::Relaxed);
        let result = decode_frame(&mut buf);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(result.is_err(), "{name}: accepted");
        assert!(largest <= SMALL, "{name}: allocated {largest} bytes");
    }

    // Control: the counter works. A prefix within the limit reserves its
    // frame (by design, once the prefix passed its check), so this is large.
    let mut buf = BytesMut::from(&20_000_000u32.to_be_bytes()[..]);
    LARGEST.store(0, Ordering::Relaxed);
    assert_eq!(decode_frame(&mut buf).unwrap(), None);
    assert!(LARGEST.load(Ordering::Relaxed) >= 20_000_000);
}
