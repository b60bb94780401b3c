//! The receive side's buffers: where bytes from the stream wait until they
//! make a whole frame, and a pool that reuses the large frame buffers.
//!
//! A raw 1920x1080 frame is 6.2 MB, and its payload leaves the reader as a
//! `Bytes` slice of the buffer it was read into (no copy). The decoder still
//! holds the previous frame while the next one arrives, so one buffer cannot
//! simply be refilled, and allocating a fresh frame-sized buffer per frame
//! sends megabytes through `malloc`/`free` and out of the cache 30 to 200
//! times a second. Instead, [`FramePool`] keeps a handle on every large
//! buffer it hands out; once every `Bytes` cut from a buffer has been
//! dropped, [`BytesMut::try_reclaim`] takes the whole buffer back without
//! allocating.
//!
//! [`Inbox`] is I/O-free: the connection reads into [`Inbox::spare`] and
//! calls [`Inbox::next_frame`]. Its state survives a cancelled read, which
//! keeps `read_message` cancel-safe.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::codec::{decode_frame, frame_len, Decoded};
use super::limits::LENGTH_PREFIX_LEN;
use super::ProtocolError;

/// Room kept free in the small buffer before each read: big enough for any
/// control message, small enough to be cheap per connection.
pub const READ_CHUNK: usize = 16 * 1024;

/// Frames longer than this are read into a pooled buffer of their own.
pub const POOLED_FRAME_MIN: usize = READ_CHUNK;

/// Large buffers the pool keeps. A call holds at most four frames at once
/// (being read, waiting in the newest-frame slot, being decoded, on screen);
/// two more absorb a size change without dropping the buffers in use.
pub const MAX_POOLED_BUFFERS: usize = 6;

/// Pooled buffers are allocated in multiples of this, so a JPEG frame a
/// little larger than the last still fits a buffer that is free.
const POOL_GRANULE: usize = 64 * 1024;

/// Bytes read from the stream, waiting to become frames.
#[derive(Debug)]
pub struct Inbox {
    /// Small frames (control messages) and the start of large ones.
    small: BytesMut,
    /// The large frame being read: its buffer and its total length.
    large: Option<(BytesMut, usize)>,
    pool: FramePool,
    /// Bytes read from the peer so far: progress even inside one large frame.
    received: u64,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            small: BytesMut::with_capacity(READ_CHUNK),
            large: None,
            pool: FramePool::default(),
            received: 0,
        }
    }
}

impl Inbox {
    /// Counts `n` bytes just read into [`Inbox::spare`].
    pub fn count_received(&mut self, n: usize) {
        self.received = self.received.saturating_add(n as u64);
    }

    /// Bytes read from the peer so far. Liveness (PROTOCOL.md: any bytes
    /// count) watches this, so a large frame crawling over a slow link is
    /// not mistaken for a vanished peer.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Takes the next whole frame out of the buffered bytes, or `Ok(None)` if
    /// more bytes are needed. The length prefix is checked against the limits
    /// before any buffer is sized by it.
    pub fn next_frame(&mut self) -> Result<Option<Decoded>, ProtocolError> {
        if let Some((mut buffer, total)) = self.large.take() {
            if buffer.len() < total {
                self.large = Some((buffer, total));
                return Ok(None);
            }
            let decoded = decode_frame(&mut buffer);
            // What is left is an empty view of the buffer; the pool gets the
            // whole buffer back once the frame cut from it is dropped.
            self.pool.give_back(buffer);
            return decoded;
        }
        let Some(total) = frame_len(&self.small)? else {
            return Ok(None);
        };
        if total > POOLED_FRAME_MIN && self.small.len() < total {
            // Everything buffered belongs to this frame: the small buffer is
            // only read into while no large frame is pending, and holds less
            // than `total` bytes.
            let mut buffer = self.pool.take(total);
            buffer.extend_from_slice(&self.small);
            self.small.clear();
            self.large = Some((buffer, total));
            return Ok(None);
        }
        decode_frame(&mut self.small)
    }

    /// Where the next read from the stream should go. For a large frame the
    /// room is limited to the bytes it still lacks, so the read never takes
    /// bytes of the frame after it.
    pub fn spare(&mut self) -> bytes::buf::Limit<&mut BytesMut> {
        match &mut self.large {
            Some((buffer, total)) => {
                let missing = *total - buffer.len();
                bytes::BufMut::limit(buffer, missing)
            }
            None => {
                if self.small.capacity() - self.small.len() < READ_CHUNK {
                    self.small.reserve(READ_CHUNK);
                }
                let room = self.small.capacity() - self.small.len();
                bytes::BufMut::limit(&mut self.small, room)
            }
        }
    }

    /// The error for a stream that ended here: `None` if it ended cleanly
    /// between frames, otherwise how much of the frame had arrived.
    pub fn truncated(&self) -> Option<ProtocolError> {
        if let Some((buffer, total)) = &self.large {
            return Some(ProtocolError::Truncated {
                received: buffer.len(),
                expected: *total,
            });
        }
        if self.small.is_empty() {
            return None;
        }
        let expected = frame_len(&self.small)
            .ok()
            .flatten()
            .unwrap_or(LENGTH_PREFIX_LEN);
        Some(ProtocolError::Truncated {
            received: self.small.len(),
            expected,
        })
    }

    /// How many large buffers were allocated, and how many times one was
    /// reused instead.
    pub fn pool_counts(&self) -> (u64, u64) {
        (self.pool.allocated, self.pool.reused)
    }
}

/// Large receive buffers, reused once the frames cut from them are dropped.
#[derive(Debug, Default)]
pub struct FramePool {
    /// Handles on the buffers handed out, oldest first. Each is an empty view
    /// at the end of its buffer while a frame cut from it is alive.
    buffers: VecDeque<BytesMut>,
    allocated: u64,
    reused: u64,
}

impl FramePool {
    /// An empty buffer with room for `len` bytes: a free pooled one if there
    /// is one, else a new one.
    pub fn take(&mut self, len: usize) -> BytesMut {
        for _ in 0..self.buffers.len() {
            let Some(mut buffer) = self.buffers.pop_front() else {
                break;
            };
            buffer.clear();
            // Succeeds only when no `Bytes` of this buffer is alive any more
            // and it is big enough; never allocates.
            if buffer.try_reclaim(len) {
                self.reused += 1;
                return buffer;
            }
            self.buffers.push_back(buffer);
        }
        self.allocated += 1;
        let capacity = len
            .div_ceil(POOL_GRANULE)
            .saturating_mul(POOL_GRANULE)
            .max(len);
        BytesMut::with_capacity(capacity)
    }

    /// Keeps a handle on a buffer a frame was cut from. When the pool is
    /// full, the oldest handle goes: its buffer is freed when the last frame
    /// cut from it is dropped.
    pub fn give_back(&mut self, buffer: BytesMut) {
        if self.buffers.len() >= MAX_POOLED_BUFFERS {
            self.buffers.pop_front();
        }
        self.buffers.push_back(buffer);
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};

    use super::*;
    use crate::protocol::{encode, Message, PixelFormat, Video};

    fn video(seq: u64, payload_len: usize) -> Vec<u8> {
        let message = Message::Video(Video {
            seq,
            capture_time_us: 1,
            width: 1,
            height: 1,
            format: PixelFormat::Jpeg,
            payload: Bytes::from(vec![seq as u8; payload_len]),
            total_len: None,
        });
        let mut frame = BytesMut::new();
        encode(&message, &mut frame).unwrap();
        frame.to_vec()
    }

    /// Feeds `bytes` into the inbox in reads of at most `chunk` bytes, the
    /// way a stream would, and returns the payloads decoded.
    fn feed(inbox: &mut Inbox, mut bytes: &[u8], chunk: usize) -> Vec<Bytes> {
        let mut payloads = Vec::new();
        loop {
            while let Some(decoded) = inbox.next_frame().unwrap() {
                match decoded {
                    Decoded::Message(Message::Video(v)) => payloads.push(v.payload),
                    other => panic!("unexpected {other:?}"),
                }
            }
            if bytes.is_empty() {
                return payloads;
            }
            let mut spare = inbox.spare();
            let n = chunk.min(spare.remaining_mut()).min(bytes.len());
            spare.put_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
    }

    #[test]
    fn large_and_small_frames_interleave_in_any_chunking() {
        let mut stream = Vec::new();
        for seq in 1..=6 {
            stream.extend(video(seq, if seq % 2 == 0 { 300_000 } else { 10 }));
        }
        for chunk in [1, 7, 4096, 70_000, usize::MAX] {
            let mut inbox = Inbox::default();
            let payloads = feed(&mut inbox, &stream, chunk);
            let lens: Vec<usize> = payloads.iter().map(Bytes::len).collect();
            assert_eq!(
                lens,
                [10, 300_000, 10, 300_000, 10, 300_000],
                "chunk {chunk}"
            );
            for (i, p) in payloads.iter().enumerate() {
                assert!(p.iter().all(|&b| b == i as u8 + 1), "chunk {chunk}");
            }
            assert!(inbox.truncated().is_none());
        }
    }

    #[test]
    fn a_buffer_is_reused_once_its_frame_is_dropped() {
        let mut inbox = Inbox::default();
        let first = feed(&mut inbox, &video(1, 1_000_000), 65_536);
        let first_ptr = first[0].as_ptr() as usize;
        // The decoder still holds frame 1 while frame 2 arrives: a new buffer.
        let second = feed(&mut inbox, &video(2, 1_000_000), 65_536);
        assert_ne!(second[0].as_ptr() as usize, first_ptr);
        drop(first);
        // Frame 1 is gone: frame 3 lands in its buffer.
        let third = feed(&mut inbox, &video(3, 1_000_000), 65_536);
        assert_eq!(third[0].as_ptr() as usize, first_ptr);
        drop(second);
        for seq in 4..100 {
            feed(&mut inbox, &video(seq, 1_000_000), 65_536);
        }
        assert_eq!(inbox.pool_counts(), (2, 97));
    }

    #[test]
    fn the_pool_stays_bounded_when_frames_are_kept() {
        let mut inbox = Inbox::default();
        let mut kept = Vec::new();
        for seq in 1..=20 {
            kept.extend(feed(&mut inbox, &video(seq, 100_000), usize::MAX));
        }
        assert_eq!(inbox.pool_counts(), (20, 0));
        assert!(inbox.pool.buffers.len() <= MAX_POOLED_BUFFERS);
        // Every kept frame is intact although the pool let go of most handles.
        for (i, p) in kept.iter().enumerate() {
            assert!(p.iter().all(|&b| b == i as u8 + 1));
        }
    }

    #[test]
    fn a_frame_cut_short_is_reported_with_its_length() {
        let mut inbox = Inbox::default();
        let frame = video(1, 200_000);
        assert!(feed(&mut inbox, &frame[..150_000], 4096).is_empty());
        match inbox.truncated() {
            Some(ProtocolError::Truncated { received, expected }) => {
                assert_eq!((received, expected), (150_000, frame.len()));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }
}
