//! Voice datagrams: the wire format of the UDP path that carries voice beside
//! the TLS stream (PROTOCOL.md, "Voice datagrams"). I/O-free, like the codec.
//!
//! **Why a second path.** In a TCP stream a lost segment holds back every
//! byte behind it until it is sent again: a round trip at best, a
//! retransmission timeout (300-900 ms measured on the 1 % loss lab link) at
//! worst. A picture that comes late only freezes; voice that comes late is a
//! gap in a sentence. Datagrams arrive independently, so a loss costs only
//! what was in the lost one, and each datagram also carries the packets sent
//! just before it, so a single loss costs nothing.
//!
//! **Why no handshake of its own (no DTLS, no QUIC).** The call already has a
//! TLS 1.3 session whose peer proved a pinned certificate. Its exporter
//! (RFC 8446, section 7.5) gives both ends the same fresh 64 bytes, a key
//! for each direction, the way DTLS-SRTP keys SRTP (RFC 5764). Nothing is
//! negotiated on the UDP path, so nothing there can be downgraded, and a
//! datagram that does not open under the key is dropped without an answer
//! (no reflection, no amplification). Every new connection of a call (a
//! reconnect) has new keys, and counters start again at 1.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//!  0       version: 1
//!  1..9    counter: 1, 2, 3, ... per direction and key; the AEAD nonce
//!  9..17   ack: the highest counter received from the peer so far (0: none)
//!  17..    ChaCha20-Poly1305 (key of the direction, nonce = 0x00000000 ‖ counter,
//!          associated data = bytes 0..17) of the body, then the 16-byte tag
//! ```
//!
//! The body is zero or more stream frames (4-byte length, CBOR message),
//! each an `audio` message exactly as in the stream, at most
//! [`MAX_AUDIO_PER_DATAGRAM`]. An empty body is a keepalive: it proves the
//! path and carries the ack.

use bytes::{Buf, Bytes};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

use super::codec::{decode_message, encode_frame, frame_len, Decoded};
use super::limits::LENGTH_PREFIX_LEN;
use super::message::{Audio, Message};
use super::validate::check_message;
use super::ProtocolError;

/// The exporter label of the datagram keys: vchat's own and versioned, so
/// they are unrelated to the spoken code and to any other use of the session.
pub const DATAGRAM_KEYS_LABEL: &[u8] = b"EXPORTER-vchat-voice-datagrams-v1";

/// Bytes taken from the exporter: the caller's sending key, then the
/// listener's.
pub const DATAGRAM_KEYING_LEN: usize = 64;

/// The datagram format's version, its first byte.
pub const DATAGRAM_VERSION: u8 = 1;

/// Version, counter, ack.
pub const DATAGRAM_HEADER_LEN: usize = 17;

/// The AEAD tag after the body.
pub const DATAGRAM_TAG_LEN: usize = 16;

/// Largest datagram either side sends or accepts, in bytes: it fits the
/// 1280-byte IPv6 minimum MTU with the IP and UDP headers, so it is never
/// fragmented. Larger ones are dropped unread.
pub const MAX_DATAGRAM_LEN: usize = 1200;

/// Most `audio` messages in one datagram: the newest packet and the ones
/// sent just before it, again (see [`MAX_REPEATS`]).
pub const MAX_AUDIO_PER_DATAGRAM: usize = 4;

/// How many earlier packets a sender repeats in each datagram: three
/// datagrams in a row must be lost for a packet to be lost (a burst of
/// 60 ms), and voice costs three times its bitrate (about 90 kbit/s).
pub const MAX_REPEATS: usize = 2;

/// Why a datagram was dropped. None of them is told to the peer: a datagram
/// that fails has no authenticated sender to tell.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatagramError {
    #[error("a datagram of {0} bytes, shorter than a header and tag")]
    TooShort(usize),
    #[error("a datagram of {0} bytes, over the limit of {MAX_DATAGRAM_LEN}")]
    TooLong(usize),
    #[error("a datagram of version {0}, not {DATAGRAM_VERSION}")]
    UnknownVersion(u8),
    #[error("a datagram with counter 0")]
    ZeroCounter,
    #[error("a datagram that does not open under the call's key (forged, or from another call)")]
    Forged,
    #[error("a datagram whose counter was seen before or is too old (replayed)")]
    Replayed,
    #[error("a datagram body that is not audio messages: {0}")]
    Body(String),
}

/// One direction's key.
pub struct DatagramKey(LessSafeKey);

impl DatagramKey {
    fn new(bytes: &[u8]) -> Self {
        // CHACHA20_POLY1305 takes exactly 32 bytes, which every caller passes.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .unwrap_or_else(|_| unreachable!("a 32-byte ChaCha20-Poly1305 key"));
        DatagramKey(LessSafeKey::new(unbound))
    }
}

impl std::fmt::Debug for DatagramKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatagramKey(..)")
    }
}

/// Both directions' keys, as one end sees them.
#[derive(Debug)]
pub struct DatagramKeys {
    pub send: DatagramKey,
    pub receive: DatagramKey,
}

impl DatagramKeys {
    /// From the exporter's [`DATAGRAM_KEYING_LEN`] bytes: the first 32 key
    /// what the caller sends, the last 32 what the listener sends.
    pub fn from_keying_material(material: &[u8; DATAGRAM_KEYING_LEN], caller: bool) -> Self {
        let (callers, listeners) = material.split_at(32);
        let (send, receive) = if caller {
            (callers, listeners)
        } else {
            (listeners, callers)
        };
        DatagramKeys {
            send: DatagramKey::new(send),
            receive: DatagramKey::new(receive),
        }
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// Seals `body` into a datagram. `counter` must be new for `key` (the
/// sender counts up from 1); `ack` is the highest counter received.
pub fn seal(key: &DatagramKey, counter: u64, ack: u64, body: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(DATAGRAM_HEADER_LEN + body.len() + DATAGRAM_TAG_LEN);
    datagram.push(DATAGRAM_VERSION);
    datagram.extend_from_slice(&counter.to_be_bytes());
    datagram.extend_from_slice(&ack.to_be_bytes());
    let mut sealed = body.to_vec();
    let header: [u8; DATAGRAM_HEADER_LEN] = datagram
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!("the header was just written"));
    // Sealing in place cannot fail for a body under ChaCha20's 256 GiB limit.
    if key
        .0
        .seal_in_place_append_tag(nonce(counter), Aad::from(header), &mut sealed)
        .is_err()
    {
        unreachable!("sealing {} bytes", body.len());
    }
    datagram.extend_from_slice(&sealed);
    datagram
}

/// What an authentic datagram said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub counter: u64,
    pub ack: u64,
    pub body: Bytes,
}

/// Opens a datagram, checking its length, version, counter (against
/// `window`, which it updates only for an authentic datagram) and tag.
pub fn open(
    key: &DatagramKey,
    window: &mut ReplayWindow,
    datagram: &[u8],
) -> Result<Opened, DatagramError> {
    if datagram.len() > MAX_DATAGRAM_LEN {
        return Err(DatagramError::TooLong(datagram.len()));
    }
    if datagram.len() < DATAGRAM_HEADER_LEN + DATAGRAM_TAG_LEN {
        return Err(DatagramError::TooShort(datagram.len()));
    }
    let (header, sealed) = datagram.split_at(DATAGRAM_HEADER_LEN);
    let mut fields = header;
    let version = fields.get_u8();
    if version != DATAGRAM_VERSION {
        return Err(DatagramError::UnknownVersion(version));
    }
    let counter = fields.get_u64();
    let ack = fields.get_u64();
    if counter == 0 {
        return Err(DatagramError::ZeroCounter);
    }
    // Checked before the tag, which costs more; marked only after it.
    if !window.is_new(counter) {
        return Err(DatagramError::Replayed);
    }
    let header: [u8; DATAGRAM_HEADER_LEN] = header
        .try_into()
        .unwrap_or_else(|_| unreachable!("split at the header's length"));
    let mut body = sealed.to_vec();
    let plain_len = key
        .0
        .open_in_place(nonce(counter), Aad::from(header), &mut body)
        .map_err(|_| DatagramError::Forged)?
        .len();
    body.truncate(plain_len);
    window.mark(counter);
    Ok(Opened {
        counter,
        ack,
        body: Bytes::from(body),
    })
}

/// The body of a datagram carrying `packets` (newest last), as stream
/// frames. Fails only for a packet the protocol's limits refuse.
pub fn encode_audio_body(packets: &[&Audio]) -> Result<Vec<u8>, ProtocolError> {
    let mut body = Vec::new();
    for audio in packets {
        let frame = encode_frame(&Message::Audio((*audio).clone()))?;
        body.extend_from_slice(&frame.head);
        body.extend_from_slice(&frame.payload);
    }
    Ok(body)
}

/// The `audio` messages in a datagram's body, each checked against the
/// protocol's limits like one from the stream. Anything else (another
/// message type, a frame cut short, more than [`MAX_AUDIO_PER_DATAGRAM`])
/// refuses the whole datagram.
pub fn decode_audio_body(mut body: Bytes) -> Result<Vec<Audio>, DatagramError> {
    let bad = |e: ProtocolError| DatagramError::Body(e.to_string());
    let mut packets = Vec::new();
    while !body.is_empty() {
        if packets.len() == MAX_AUDIO_PER_DATAGRAM {
            return Err(DatagramError::Body(format!(
                "more than {MAX_AUDIO_PER_DATAGRAM} audio messages"
            )));
        }
        let total = frame_len(&body)
            .map_err(bad)?
            .ok_or_else(|| DatagramError::Body("a length prefix cut short".into()))?;
        if total > body.len() {
            return Err(DatagramError::Body(format!(
                "a frame of {total} bytes in {} that are left",
                body.len()
            )));
        }
        let mut frame = body.split_to(total);
        frame.advance(LENGTH_PREFIX_LEN);
        match decode_message(frame).map_err(bad)? {
            Decoded::Message(message @ Message::Audio(_)) => {
                check_message(&message).map_err(bad)?;
                if let Message::Audio(audio) = message {
                    packets.push(audio);
                }
            }
            Decoded::Message(other) => {
                return Err(DatagramError::Body(format!(
                    "a {} message, where only audio may come",
                    other.kind()
                )))
            }
            Decoded::Unknown { kind } => {
                return Err(DatagramError::Body(format!(
                    "a message of unknown type {kind:?}"
                )))
            }
        }
    }
    Ok(packets)
}

/// The numbers seen lately, to refuse a second copy: the newest and the 63
/// below it (as IPsec's and WireGuard's anti-replay windows). Anything older
/// than that counts as seen.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit `i`: `highest - i` was seen.
    seen: u64,
}

impl ReplayWindow {
    /// The numbers below the newest that the window remembers.
    pub const SPAN: u64 = 64;

    /// Whether `n` has not been seen and is recent enough to tell.
    pub fn is_new(&self, n: u64) -> bool {
        match self.highest {
            None => true,
            Some(highest) if n > highest => true,
            Some(highest) => {
                let back = highest - n;
                back < Self::SPAN && self.seen & (1 << back) == 0
            }
        }
    }

    /// Marks `n` seen.
    pub fn mark(&mut self, n: u64) {
        match self.highest {
            Some(highest) if n <= highest => {
                let back = highest - n;
                if back < Self::SPAN {
                    self.seen |= 1 << back;
                }
            }
            previous => {
                let shift = previous.map_or(Self::SPAN, |h| n - h);
                self.seen = if shift >= Self::SPAN {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.highest = Some(n);
            }
        }
    }

    /// [`is_new`](Self::is_new), then [`mark`](Self::mark): true the first time.
    pub fn first_time(&mut self, n: u64) -> bool {
        let new = self.is_new(n);
        if new {
            self.mark(n);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AudioFormat;

    fn keys() -> (DatagramKeys, DatagramKeys) {
        let mut material = [0u8; DATAGRAM_KEYING_LEN];
        for (i, b) in material.iter_mut().enumerate() {
            *b = i as u8;
        }
        (
            DatagramKeys::from_keying_material(&material, true),
            DatagramKeys::from_keying_material(&material, false),
        )
    }

    fn audio(seq: u64) -> Audio {
        Audio {
            seq,
            capture_time_us: 1_000_000 + seq * 20_000,
            format: AudioFormat::Opus,
            payload: Bytes::from(vec![seq as u8; 80]),
        }
    }

    #[test]
    fn what_one_end_seals_the_other_opens_and_only_once() {
        let (caller, listener) = keys();
        let (a, b) = (audio(7), audio(8));
        let body = encode_audio_body(&[&a, &b]).unwrap();
        let datagram = seal(&caller.send, 1, 0, &body);
        assert_eq!(
            datagram.len(),
            DATAGRAM_HEADER_LEN + body.len() + DATAGRAM_TAG_LEN
        );
        let mut window = ReplayWindow::default();
        let opened = open(&listener.receive, &mut window, &datagram).unwrap();
        assert_eq!((opened.counter, opened.ack), (1, 0));
        assert_eq!(decode_audio_body(opened.body).unwrap(), vec![a, b]);
        assert_eq!(
            open(&listener.receive, &mut window, &datagram),
            Err(DatagramError::Replayed)
        );
    }

    #[test]
    fn each_direction_has_its_own_key() {
        let (caller, listener) = keys();
        let datagram = seal(&caller.send, 1, 0, b"");
        // Reflected back to the caller, it does not open.
        let mut window = ReplayWindow::default();
        assert_eq!(
            open(&caller.receive, &mut window, &datagram),
            Err(DatagramError::Forged)
        );
        // Nor does the listener's own.
        let own = seal(&listener.send, 1, 0, b"");
        assert_eq!(
            open(&listener.receive, &mut window, &own),
            Err(DatagramError::Forged)
        );
        // A refused datagram does not use up its counter.
        assert!(open(&listener.receive, &mut window, &datagram).is_ok());
    }

    #[test]
    fn any_changed_bit_refuses_the_datagram() {
        let (caller, listener) = keys();
        let datagram = seal(
            &caller.send,
            5,
            3,
            &encode_audio_body(&[&audio(1)]).unwrap(),
        );
        for byte in 0..datagram.len() {
            let mut bent = datagram.clone();
            bent[byte] ^= 0x10;
            let result = open(&listener.receive, &mut ReplayWindow::default(), &bent);
            assert!(result.is_err(), "byte {byte} changed and it still opened");
        }
    }

    #[test]
    fn sizes_and_versions_are_checked_before_the_key() {
        let (_, listener) = keys();
        let mut window = ReplayWindow::default();
        let key = &listener.receive;
        assert_eq!(
            open(key, &mut window, &[1; 32]),
            Err(DatagramError::TooShort(32))
        );
        assert_eq!(
            open(key, &mut window, &[1; MAX_DATAGRAM_LEN + 1]),
            Err(DatagramError::TooLong(MAX_DATAGRAM_LEN + 1))
        );
        assert_eq!(
            open(key, &mut window, &[2; 40]),
            Err(DatagramError::UnknownVersion(2))
        );
        let mut zero = [0u8; 40];
        zero[0] = DATAGRAM_VERSION;
        assert_eq!(
            open(key, &mut window, &zero),
            Err(DatagramError::ZeroCounter)
        );
    }

    #[test]
    fn a_body_of_anything_but_audio_is_refused() {
        let ping = encode_frame(&Message::Ping { nonce: 1 }).unwrap();
        assert!(matches!(
            decode_audio_body(ping.head.clone()),
            Err(DatagramError::Body(_))
        ));
        let five: Vec<Audio> = (0..5).map(audio).collect();
        let body = encode_audio_body(&five.iter().collect::<Vec<_>>()).unwrap();
        assert!(decode_audio_body(Bytes::from(body.clone())).is_err());
        // Cut anywhere inside a frame.
        let one = encode_audio_body(&[&audio(1)]).unwrap();
        for cut in 1..one.len() {
            assert!(decode_audio_body(Bytes::copy_from_slice(&one[..cut])).is_err());
        }
        assert_eq!(decode_audio_body(Bytes::new()).unwrap(), vec![]);
    }

    #[test]
    fn the_window_takes_each_number_once_and_late_ones_within_its_span() {
        let mut window = ReplayWindow::default();
        assert!(window.first_time(0));
        assert!(!window.first_time(0));
        assert!(window.first_time(10));
        // Out of order, but within the span: new once.
        assert!(window.first_time(5));
        assert!(!window.first_time(5));
        assert!(window.first_time(200));
        // 10 is now more than 64 below the newest: counted as seen.
        assert!(!window.first_time(136));
        assert!(window.first_time(137));
        assert!(!window.first_time(137));
        assert!(window.first_time(199));
        assert!(window.first_time(u64::MAX));
        assert!(!window.first_time(u64::MAX));
    }
}
