//! Reassembling video frames sent in parts (version 4, PROTOCOL.md 5.10),
//! with no I/O: the receiver feeds every message it reads and gets back
//! what to act on, a frame only once it is whole.
//!
//! The session (`validate.rs`) has already refused any part that does not
//! continue the open frame, so this only joins bytes; it reserves at most
//! [`ASSEMBLY_START`] up front and grows as parts come, so a declared
//! length alone never costs memory.

use bytes::BytesMut;

use super::{Message, Video};

/// The first reservation for a frame arriving in parts.
pub const ASSEMBLY_START: usize = 256 * 1024;

/// The frame being reassembled, if any.
#[derive(Debug, Default)]
pub struct FrameAssembler {
    open: Option<(Video, usize, BytesMut)>,
}

impl FrameAssembler {
    /// An assembler with no frame open.
    pub fn new() -> Self {
        FrameAssembler::default()
    }

    /// Takes one received message. A whole `video` and every other message
    /// come straight back; the first part of a frame and its further parts
    /// are kept (`None`) until the last one, when the whole frame comes
    /// back as one `video` without `total_len`.
    pub fn feed(&mut self, message: Message) -> Option<Message> {
        match message {
            Message::Video(mut video) => match video.total_len.take() {
                Some(total) => {
                    let mut payload = BytesMut::with_capacity(total.min(ASSEMBLY_START));
                    payload.extend_from_slice(&video.payload);
                    self.open = Some((video, total, payload));
                    None
                }
                None => Some(Message::Video(video)),
            },
            Message::VideoPart(part) => {
                let (video, total, mut payload) = self.open.take()?;
                payload.extend_from_slice(&part.payload);
                if payload.len() < total {
                    self.open = Some((video, total, payload));
                    return None;
                }
                Some(Message::Video(Video {
                    payload: payload.freeze(),
                    ..video
                }))
            }
            other => Some(other),
        }
    }

    /// Whether a frame is open (some of its parts still to come).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::{PixelFormat, VideoPart};

    #[test]
    fn parts_come_back_as_one_frame_and_other_messages_pass_through() {
        let mut a = FrameAssembler::new();
        let first = Video {
            seq: 7,
            capture_time_us: 1,
            width: 2,
            height: 1,
            format: PixelFormat::Rgb24,
            payload: Bytes::from_static(&[1, 2]),
            total_len: Some(6),
        };
        assert!(a.feed(Message::Video(first)).is_none());
        assert_eq!(
            a.feed(Message::Ping { nonce: 1 }),
            Some(Message::Ping { nonce: 1 })
        );
        let part = |bytes: &'static [u8]| {
            Message::VideoPart(VideoPart {
                seq: 7,
                payload: Bytes::from_static(bytes),
            })
        };
        assert!(a.feed(part(&[3, 4])).is_none());
        assert!(a.is_open());
        let Some(Message::Video(whole)) = a.feed(part(&[5, 6])) else {
            panic!("the frame is whole");
        };
        assert_eq!(&whole.payload[..], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(whole.total_len, None);
        assert!(!a.is_open());
        // A stray part (the session refuses it first) is dropped, not a panic.
        assert!(a.feed(part(&[9])).is_none());
    }
}
