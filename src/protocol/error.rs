//! What can go wrong on the wire, and the Bye that tells the peer about it.

use std::io;

use super::limits::MAX_BYE_TEXT_LEN;
use super::{Bye, ByeReason, PixelFormat};

/// Everything that can go wrong reading or writing protocol messages.
///
/// Apart from [`ProtocolError::Io`] and [`ProtocolError::Truncated`] (the
/// connection itself is gone), every variant is a protocol violation that
/// ends the call: send [`ProtocolError::bye`] to the peer, then close.
/// A clean end of stream is not an error: `Connection::read_message` returns
/// `Ok(None)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Reading from or writing to the stream failed (this includes TLS
    /// alerts, e.g. the listener rejecting our certificate).
    #[error("connection failed: {}", io_in_words(.0))]
    Io(#[from] io::Error),

    /// The stream ended in the middle of a message.
    #[error(
        "the connection ended in the middle of a message ({received} of {expected} bytes received)"
    )]
    Truncated {
        /// Bytes of the frame (length prefix included) that arrived.
        received: usize,
        /// Bytes the frame needed (only the prefix's 4 if it was cut short).
        expected: usize,
    },

    /// A length prefix of 0: a message is exactly one CBOR item, never empty.
    #[error("empty message: the length prefix is 0")]
    EmptyMessage,

    /// A length prefix above `MAX_MESSAGE_LEN`, refused before any allocation.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLong {
        /// The declared length.
        len: u64,
        /// The limit.
        max: u64,
    },

    /// The bytes are not the CBOR the protocol allows (bad syntax, an item
    /// running past the end of the message, trailing bytes, indefinite
    /// lengths, nesting too deep).
    #[error("malformed message at byte {offset}: {problem}")]
    Malformed {
        /// Offset in the CBOR item (after the length prefix).
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },

    /// A known field holds the wrong CBOR type.
    #[error("{field} must be {expected}, found {found}")]
    WrongType {
        /// Which field, e.g. `video.width`.
        field: &'static str,
        /// The CBOR type it must have.
        expected: &'static str,
        /// The CBOR type it has.
        found: &'static str,
    },

    /// A required field is absent.
    #[error("{message} message lacks the required field {field:?}")]
    MissingField {
        /// The message type.
        message: &'static str,
        /// The missing key.
        field: &'static str,
    },

    /// A known field appears twice in one map.
    #[error("{message} message has the field {field:?} twice")]
    DuplicateField {
        /// The message type.
        message: &'static str,
        /// The repeated key.
        field: &'static str,
    },

    /// A number, length or count is beyond its limit (see `limits.rs`).
    #[error("{what} is {value}, beyond the limit of {limit}")]
    LimitExceeded {
        /// What was measured, e.g. `video.width` or `hello.name length`.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The limit it broke.
        limit: u64,
    },

    /// A value has the right type and size but is not allowed (a zero
    /// dimension, version 0, invalid UTF-8, a control character, an unknown
    /// pixel format).
    #[error("{field} is invalid: {problem}")]
    InvalidValue {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// A raw frame whose payload length does not match its dimensions.
    #[error("video frame {width}x{height} {format} declares {actual} payload bytes, expected {expected}")]
    PayloadMismatch {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Declared format.
        format: PixelFormat,
        /// Payload bytes received.
        actual: usize,
        /// Payload bytes the dimensions require.
        expected: usize,
    },

    /// A video frame's sequence number is not above the previous one.
    #[error("video frame sequence number {seq} does not increase (previous was {previous})")]
    SequenceNotIncreasing {
        /// The offending sequence number.
        seq: u64,
        /// The previous frame's.
        previous: u64,
    },

    /// The peer sent video we did not say we accept.
    #[error("video frame {width}x{height} {format} is not what we accept ({accepted})")]
    NotAccepted {
        /// Width of the frame.
        width: u32,
        /// Height of the frame.
        height: u32,
        /// Format of the frame.
        format: PixelFormat,
        /// What our Hello said we accept.
        accepted: String,
    },

    /// No protocol version both peers speak.
    #[error("the peer speaks protocol version {peer}, this vchat needs version {min} or newer")]
    UnsupportedVersion {
        /// The version the peer's Hello or Accept named.
        peer: u32,
        /// The oldest version we speak.
        min: u32,
    },

    /// The peer sent a message it may not send now (e.g. video before the
    /// call was accepted, a second Hello, an Accept from the caller).
    #[error("unexpected {message} message: {why}")]
    UnexpectedMessage {
        /// The message type.
        message: &'static str,
        /// Why it is not allowed now.
        why: &'static str,
    },

    /// The peer sent more pings within one second than
    /// `MAX_PINGS_PER_SECOND` (PROTOCOL.md 5.4): each one asks for a pong,
    /// so a flood would make us queue replies without end.
    #[error("the peer sent {count} pings within one second, more than the limit of {limit}")]
    PingFlood {
        /// Pings counted in the window when the limit was crossed.
        count: u32,
        /// The limit.
        limit: u32,
    },

    /// We were asked to send something the protocol forbids now (a bug on
    /// this side, never the peer's fault).
    #[error("cannot send {message}: {why}")]
    SendNotAllowed {
        /// The message type.
        message: &'static str,
        /// Why.
        why: String,
    },
}

/// An I/O error from the TLS stream in plain words: rustls reports a stream
/// that ended without close_notify with a link to its manual, which tells a
/// person nothing; other messages lose any such link too.
pub fn io_in_words(error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        return "the connection ended abruptly, without TLS's closing message".to_owned();
    }
    without_links(&error.to_string())
}

/// `message` without the documentation links some libraries append
/// (rustls ends some messages with ": https://docs.rs/...").
pub fn without_links(message: &str) -> String {
    message
        .split(": ")
        .filter(|part| !part.starts_with("http://") && !part.starts_with("https://"))
        .collect::<Vec<_>>()
        .join(": ")
}

impl ProtocolError {
    /// Whether the connection itself is gone, so no Bye can be delivered.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, ProtocolError::Io(_) | ProtocolError::Truncated { .. })
    }

    /// Whether the error is on our side (a send we refused), not the peer's.
    pub fn is_local(&self) -> bool {
        matches!(self, ProtocolError::SendNotAllowed { .. })
    }

    /// The Bye that ends the call because of this error, naming the problem
    /// (the text is this error's message, cut to `MAX_BYE_TEXT_LEN` bytes).
    pub fn bye(&self) -> Bye {
        let reason = match self {
            ProtocolError::UnsupportedVersion { .. } => ByeReason::UnsupportedVersion,
            ProtocolError::SendNotAllowed { .. } => ByeReason::InternalError,
            _ => ByeReason::ProtocolError,
        };
        Bye::new(reason, bye_text(&self.to_string()))
    }
}

/// `text` made fit for a Bye: control characters replaced, cut to the limit
/// on a character boundary.
pub fn bye_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_BYE_TEXT_LEN));
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > MAX_BYE_TEXT_LEN {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_without_library_links() {
        // What rustls returns when a TLS stream ends without close_notify.
        let eof = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: \
             https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        let said = ProtocolError::Io(eof).to_string();
        assert!(!said.contains("http"), "{said}");
        assert!(said.contains("ended abruptly"), "{said}");
        let other = io::Error::other("bad thing: see https://example.org/x: really");
        assert_eq!(
            io_in_words(&other),
            "bad thing: see https://example.org/x: really"
        );
        let linked = io::Error::other("bad thing: https://example.org/x");
        assert_eq!(io_in_words(&linked), "bad thing");
    }
}
