//! Named limits of the wire protocol, each with the reason for its value.
//!
//! Every limit is checked before the thing it bounds is allocated: a length
//! prefix before the frame buffer grows, a declared string or array length
//! before a `String` or `Vec` is made. PROTOCOL.md lists the same numbers; a
//! peer in another language must apply them too.

use std::time::Duration;

use super::PixelFormat;

/// The protocol version this build speaks (the newest one it knows).
/// Version 2 changed the transport (the pre-TLS knock, no SNI, no ALPN);
/// version 3 added the `h264` format and the `keyframe` message; version 4
/// added voice (`audio`, `microphone`, `hello.receive.audio`); version 5
/// added voice datagrams (the UDP path beside the stream, `datagram.rs`).
pub const PROTOCOL_VERSION: u32 = 5;

/// The first version whose calls may carry voice in datagrams.
pub const VOICE_DATAGRAMS_VERSION: u32 = 5;

/// The first version whose calls carry `audio` and `microphone` messages.
pub const AUDIO_VERSION: u32 = 4;

/// The first version whose calls may send a video frame in parts
/// (`video.total_len`, `video_part`).
pub const VIDEO_PARTS_VERSION: u32 = 4;

/// Largest `audio` payload, in bytes: the most one Opus frame may hold
/// (RFC 6716, section 3.2.1). A 20 ms speech packet at 32 kbit/s is 80.
pub const MAX_AUDIO_PAYLOAD_LEN: usize = 1275;

/// The oldest protocol version this build can still speak. A peer whose
/// Hello names an older version is refused with a Bye `unsupported_version`.
/// 2, because a version-1 caller sends no knock and so never reaches a
/// version-2 listener's TLS at all.
pub const MIN_PROTOCOL_VERSION: u32 = 2;

/// Widest frame, in pixels: 4K UHD, the largest common camera and screen mode.
pub const MAX_WIDTH: u32 = 3840;

/// Tallest frame, in pixels: 4K UHD.
pub const MAX_HEIGHT: u32 = 2160;

/// Largest video payload, in bytes: an uncompressed RGB24 frame of
/// `MAX_WIDTH x MAX_HEIGHT` (24,883,200 bytes), the largest raw frame the
/// protocol allows. A JPEG bigger than the raw image it encodes is refused too.
pub const MAX_PAYLOAD_LEN: usize = MAX_WIDTH as usize * MAX_HEIGHT as usize * 3;

/// Room for everything in a video message except its payload: the head is
/// under 100 bytes today; the rest leaves space for optional fields that newer
/// versions may add (which older peers skip).
pub const HEADER_SLACK: usize = 4096;

/// Largest message (the `N` of a frame's length prefix), in bytes: the largest
/// payload plus the slack. Checked on the 4 prefix bytes alone, before any
/// buffer for the message is reserved.
pub const MAX_MESSAGE_LEN: usize = MAX_PAYLOAD_LEN + HEADER_SLACK;

/// Bytes of the big-endian length prefix in front of every message.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Longest display name, in UTF-8 bytes: enough for any real name, short
/// enough to fit a window title.
pub const MAX_DISPLAY_NAME_LEN: usize = 64;

/// Longest software name and software version, each in UTF-8 bytes: these are
/// shown in logs and "about the peer" lines only.
pub const MAX_SOFTWARE_LEN: usize = 64;

/// Longest human-readable text in a Bye, in UTF-8 bytes: one sentence naming
/// the problem (protocol errors quote numbers, not payloads).
pub const MAX_BYE_TEXT_LEN: usize = 256;

/// Longest identifier, in UTF-8 bytes: message type names, map keys, codec
/// names and Bye reason codes are short ASCII words.
pub const MAX_IDENT_LEN: usize = 32;

/// Most entries in a Hello's codec list: vchat knows 3 formats; the rest is
/// room for codecs that newer peers may list (and older peers ignore).
pub const MAX_CODECS: usize = 16;

/// Most entries in one CBOR map: every message has at most 6 fields today;
/// the rest is room for fields that newer versions may add.
pub const MAX_MAP_ENTRIES: usize = 32;

/// Deepest nesting of CBOR arrays, maps and tags (the message's outer array
/// counts as 1). vchat's own messages reach depth 4 (the codec list inside
/// a Hello); unknown fields may nest a little deeper, but not without end.
pub const MAX_NESTING: usize = 16;

/// Each side sends a `ping` at least this often while connected, so a silent
/// link is noticed: also the longest an alive peer stays silent.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);

/// A side that has received nothing (no byte of any message) for this long
/// ends the call: five missed pings, long enough for a congested link to
/// recover, short enough that a vanished peer does not freeze the window.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Time each side allows, from the end of the TLS handshake, for the hello
/// and accept exchange: the peer's program answers at once, this only guards
/// against a peer that completes TLS and then stalls.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// After sending or receiving `bye`, how long a side keeps reading for the
/// peer's close_notify or end of stream before it closes anyway: enough for
/// a frame already in flight on a slow link, short enough to exit promptly.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Most `ping`s per second a side answers before it may end the call with
/// `bye` `protocol_error`: a peer needs 1 per `PING_INTERVAL`; 50 leaves room
/// for bursts after a stall and for RTT probes, while a flood (thousands per
/// second) is refused. Counted over any one-second window.
pub const MAX_PINGS_PER_SECOND: u32 = 50;

/// Shortest time between two `keyframe` requests a side sends, and between
/// two keyframes a side makes because it was asked: a decoder that waits
/// for a keyframe asks again if none came (the request or the keyframe was
/// on a link that dropped), but a keyframe costs tens of kilobytes, so a
/// stream of requests must not become a stream of keyframes.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// The largest payload a raw frame of this format and size has, if the size is
/// within the limits (used by tests and documentation).
pub fn max_raw_payload(format: PixelFormat) -> Option<usize> {
    format.raw_len(MAX_WIDTH, MAX_HEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_raw_frame_fits_in_a_message() {
        assert_eq!(max_raw_payload(PixelFormat::Rgb24), Some(MAX_PAYLOAD_LEN));
        assert_eq!(MAX_PAYLOAD_LEN, 24_883_200);
        assert!(MAX_MESSAGE_LEN <= u32::MAX as usize);
    }

    #[test]
    fn timeouts_leave_room_for_missed_pings() {
        assert!(PEER_TIMEOUT >= PING_INTERVAL * 3);
        assert!(u64::from(MAX_PINGS_PER_SECOND) * PING_INTERVAL.as_millis() as u64 >= 1000);
    }
}
