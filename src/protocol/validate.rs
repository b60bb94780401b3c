//! The rules a message must follow beyond its shape, with no I/O.
//!
//! Two kinds of check live here:
//!
//! - stateless ones ([`check_message`]): limits, dimensions, payload length
//!   against width, height and format. The codec runs them on every message
//!   it encodes or decodes.
//! - the [`Session`]: what each side may send when. It follows the handshake
//!   (the caller's Hello, the listener's Hello, then the listener's Accept), negotiates the
//!   version, holds each side's receive capabilities and checks that video
//!   sequence numbers increase. `Connection` feeds it every message, in both
//!   directions; it is plain data so it can be tested and fuzzed in memory.

use std::time::{Duration, Instant};

use super::limits::{
    AUDIO_VERSION, MAX_AUDIO_PAYLOAD_LEN, MAX_BYE_TEXT_LEN, MAX_CODECS, MAX_DISPLAY_NAME_LEN,
    MAX_HEIGHT, MAX_PAYLOAD_LEN, MAX_PINGS_PER_SECOND, MAX_SOFTWARE_LEN, MAX_WIDTH,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, VIDEO_PARTS_VERSION,
};
use super::{Hello, Message, ProtocolError, Receive, Video};

/// Checks a message against the protocol's stateless rules.
pub fn check_message(message: &Message) -> Result<(), ProtocolError> {
    match message {
        Message::Hello(hello) => {
            check_version("hello.version", hello.version)?;
            check_text("hello.software", &hello.software_name, MAX_SOFTWARE_LEN)?;
            check_text(
                "hello.software_version",
                &hello.software_version,
                MAX_SOFTWARE_LEN,
            )?;
            check_text("hello.name", &hello.display_name, MAX_DISPLAY_NAME_LEN)?;
            check_receive(&hello.receive)
        }
        Message::Accept(accept) => check_version("accept.version", accept.version),
        Message::Video(video) => {
            check_dimension("video.width", video.width, MAX_WIDTH)?;
            check_dimension("video.height", video.height, MAX_HEIGHT)?;
            check_video_lengths(video, video.payload.len())
        }
        Message::VideoPart(part) if part.payload.is_empty() => Err(ProtocolError::InvalidValue {
            field: "video_part.payload",
            problem: "an empty part".into(),
        }),
        Message::VideoPart(_) => Ok(()),
        Message::Audio(audio) => check_audio_payload_len(audio.payload.len()),
        Message::Ping { .. }
        | Message::Pong { .. }
        | Message::Camera { .. }
        | Message::Microphone { .. }
        | Message::Keyframe => Ok(()),
        Message::Bye(bye) => check_text("bye.text", &bye.text, MAX_BYE_TEXT_LEN),
    }
}

fn check_version(field: &'static str, version: u32) -> Result<(), ProtocolError> {
    if version == 0 {
        return Err(ProtocolError::InvalidValue {
            field,
            problem: "version 0 does not exist (versions start at 1)".into(),
        });
    }
    Ok(())
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), ProtocolError> {
    if text.len() > max {
        return Err(ProtocolError::LimitExceeded {
            what: field,
            value: text.len() as u64,
            limit: max as u64,
        });
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(ProtocolError::InvalidValue {
            field,
            problem: format!("contains the control character {:?}", c),
        });
    }
    Ok(())
}

fn check_dimension(field: &'static str, value: u32, max: u32) -> Result<(), ProtocolError> {
    if value == 0 {
        return Err(ProtocolError::InvalidValue {
            field,
            problem: "must be at least 1".into(),
        });
    }
    if value > max {
        return Err(ProtocolError::LimitExceeded {
            what: field,
            value: value.into(),
            limit: max.into(),
        });
    }
    Ok(())
}

fn check_receive(receive: &Receive) -> Result<(), ProtocolError> {
    if receive.codecs.len() > MAX_CODECS {
        return Err(ProtocolError::LimitExceeded {
            what: "hello.receive.codecs",
            value: receive.codecs.len() as u64,
            limit: MAX_CODECS as u64,
        });
    }
    if receive.audio.len() > MAX_CODECS {
        return Err(ProtocolError::LimitExceeded {
            what: "hello.receive.audio",
            value: receive.audio.len() as u64,
            limit: MAX_CODECS as u64,
        });
    }
    check_dimension("hello.receive.max_width", receive.max_width, MAX_WIDTH)?;
    check_dimension("hello.receive.max_height", receive.max_height, MAX_HEIGHT)
}

/// Checks that a payload of `len` bytes fits `video`'s format and dimensions:
/// exactly `raw_len` for raw formats, `1..=MAX_PAYLOAD_LEN` for JPEG.
pub fn check_payload_len(video: &Video, len: usize) -> Result<(), ProtocolError> {
    let expected = video.format.raw_len(video.width, video.height);
    match expected {
        Some(expected) if len != expected => Err(ProtocolError::PayloadMismatch {
            width: video.width,
            height: video.height,
            format: video.format,
            actual: len,
            expected,
        }),
        None if len == 0 => Err(ProtocolError::InvalidValue {
            field: "video.payload",
            problem: format!("an empty {} payload", video.format),
        }),
        _ if len > MAX_PAYLOAD_LEN => Err(ProtocolError::LimitExceeded {
            what: "video.payload length",
            value: len as u64,
            limit: MAX_PAYLOAD_LEN as u64,
        }),
        _ => Ok(()),
    }
}

/// Checks a video message's lengths: a whole payload by
/// [`check_payload_len`]; a frame in parts (version 4) by its `total_len`,
/// with a first part of at least 1 byte and less than the whole.
pub fn check_video_lengths(video: &Video, len: usize) -> Result<(), ProtocolError> {
    let Some(total) = video.total_len else {
        return check_payload_len(video, len);
    };
    check_payload_len(video, total)?;
    if len == 0 || len >= total {
        return Err(ProtocolError::InvalidValue {
            field: "video.payload",
            problem: format!(
                "a first part of {len} bytes of a {total}-byte frame (it must be 1 to {})",
                total.saturating_sub(1)
            ),
        });
    }
    Ok(())
}

/// Checks an audio payload's length: `1..=MAX_AUDIO_PAYLOAD_LEN`.
fn check_audio_payload_len(len: usize) -> Result<(), ProtocolError> {
    if len == 0 {
        return Err(ProtocolError::InvalidValue {
            field: "audio.payload",
            problem: "an empty audio packet".into(),
        });
    }
    if len > MAX_AUDIO_PAYLOAD_LEN {
        return Err(ProtocolError::LimitExceeded {
            what: "audio.payload length",
            value: len as u64,
            limit: MAX_AUDIO_PAYLOAD_LEN as u64,
        });
    }
    Ok(())
}

/// Which end of the call this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Dialled the peer (TLS client). Waits for Accept before it is connected.
    Caller,
    /// Was dialled (TLS server). Sends Accept (or Bye) after the caller's Hello.
    Listener,
}

/// The protocol state of one call, for both directions.
#[derive(Debug, Clone)]
pub struct Session {
    role: Role,
    local_hello: Option<Hello>,
    peer_hello: Option<Hello>,
    accepted: bool,
    sent_bye: bool,
    received_bye: bool,
    last_sent_seq: Option<u64>,
    last_received_seq: Option<u64>,
    last_sent_audio_seq: Option<u64>,
    last_received_audio_seq: Option<u64>,
    /// A frame in parts being received / sent: its seq and bytes to come.
    receiving_parts: Option<(u64, usize)>,
    sending_parts: Option<(u64, usize)>,
    unknown_received: u64,
}

impl Session {
    /// A session that has exchanged nothing yet.
    pub fn new(role: Role) -> Self {
        Session {
            role,
            local_hello: None,
            peer_hello: None,
            accepted: false,
            sent_bye: false,
            received_bye: false,
            last_sent_seq: None,
            last_received_seq: None,
            last_sent_audio_seq: None,
            last_received_audio_seq: None,
            receiving_parts: None,
            sending_parts: None,
            unknown_received: 0,
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's Hello, once received.
    pub fn peer_hello(&self) -> Option<&Hello> {
        self.peer_hello.as_ref()
    }

    /// Our Hello, once sent.
    pub fn local_hello(&self) -> Option<&Hello> {
        self.local_hello.as_ref()
    }

    /// The version the call speaks: the lower of the two Hello versions, once
    /// both are known.
    pub fn version(&self) -> Option<u32> {
        Some(
            self.local_hello
                .as_ref()?
                .version
                .min(self.peer_hello.as_ref()?.version),
        )
    }

    /// Whether the call is up: the listener has sent (or, for the caller, we
    /// have received) Accept, and no Bye has passed either way.
    pub fn is_connected(&self) -> bool {
        self.accepted && !self.sent_bye && !self.received_bye
    }

    /// How many messages of unknown types were received and ignored.
    pub fn unknown_received(&self) -> u64 {
        self.unknown_received
    }

    /// Checks and records a message received from the peer.
    pub fn on_receive(&mut self, message: &Message) -> Result<(), ProtocolError> {
        let unexpected = |why| ProtocolError::UnexpectedMessage {
            message: message.kind(),
            why,
        };
        if self.received_bye {
            return Err(unexpected("the peer already said bye"));
        }
        if let Message::Bye(_) = message {
            self.received_bye = true;
            return Ok(());
        }
        let Some(peer_hello) = &self.peer_hello else {
            let Message::Hello(hello) = message else {
                return Err(unexpected("the first message must be hello"));
            };
            if hello.version < MIN_PROTOCOL_VERSION {
                return Err(ProtocolError::UnsupportedVersion {
                    peer: hello.version,
                    min: MIN_PROTOCOL_VERSION,
                });
            }
            self.peer_hello = Some(hello.clone());
            return Ok(());
        };
        match message {
            Message::Hello(_) => Err(unexpected("the peer already sent its hello")),
            Message::Accept(accept) => {
                if self.role == Role::Listener {
                    return Err(unexpected("only the listener accepts a call"));
                }
                if self.accepted {
                    return Err(unexpected("the call was already accepted"));
                }
                let Some(version) = self.version() else {
                    return Err(unexpected("it came before our hello"));
                };
                if accept.version != version {
                    return Err(ProtocolError::InvalidValue {
                        field: "accept.version",
                        problem: format!(
                            "is {}, but the hellos agree on {version} (ours {}, the peer's {})",
                            accept.version,
                            self.local_hello.as_ref().map_or(0, |h| h.version),
                            peer_hello.version
                        ),
                    });
                }
                self.accepted = true;
                Ok(())
            }
            Message::Video(video) => {
                if !self.accepted {
                    return Err(unexpected("the call has not been accepted yet"));
                }
                if let Some(local) = &self.local_hello {
                    let ours = &local.receive;
                    if !ours.accepts(video.format, video.width, video.height) {
                        return Err(ProtocolError::NotAccepted {
                            width: video.width,
                            height: video.height,
                            format: video.format,
                            accepted: describe(ours),
                        });
                    }
                }
                if let Some((seq, left)) = self.receiving_parts {
                    return Err(ProtocolError::InvalidValue {
                        field: "video",
                        problem: format!(
                            "came while frame {seq} still lacks {left} bytes of its parts"
                        ),
                    });
                }
                if video.total_len.is_some()
                    && self.version().is_some_and(|v| v < VIDEO_PARTS_VERSION)
                {
                    return Err(unexpected("frames in parts need version 4"));
                }
                check_seq(&mut self.last_received_seq, video.seq)?;
                if let Some(total) = video.total_len {
                    self.receiving_parts = Some((video.seq, total - video.payload.len()));
                }
                Ok(())
            }
            Message::VideoPart(part) => {
                self.receiving_parts =
                    next_part(self.receiving_parts, part).map_err(|problem| {
                        ProtocolError::InvalidValue {
                            field: "video_part",
                            problem,
                        }
                    })?;
                Ok(())
            }
            Message::Audio(audio) => {
                if !self.accepted {
                    return Err(unexpected("the call has not been accepted yet"));
                }
                if self.version().is_some_and(|v| v < AUDIO_VERSION) {
                    return Err(unexpected("the call speaks a version without audio"));
                }
                let ours = self.local_hello.as_ref().map(|h| &h.receive.audio);
                if ours.is_some_and(|list| !list.contains(&audio.format)) {
                    return Err(ProtocolError::InvalidValue {
                        field: "audio.format",
                        problem: format!("{} audio, which our hello did not list", audio.format),
                    });
                }
                check_seq(&mut self.last_received_audio_seq, audio.seq)
            }
            Message::Ping { .. }
            | Message::Pong { .. }
            | Message::Camera { .. }
            | Message::Microphone { .. }
            | Message::Keyframe => Ok(()),
            Message::Bye(_) => Ok(()), // handled above
        }
    }

    /// Records a received message of unknown type (ignored once the peer's
    /// Hello is in; before it, the first message must be a Hello).
    pub fn on_receive_unknown(&mut self, _kind: &str) -> Result<(), ProtocolError> {
        let why = if self.received_bye {
            "the peer already said bye"
        } else if self.peer_hello.is_none() {
            "the first message must be hello"
        } else {
            self.unknown_received = self.unknown_received.saturating_add(1);
            return Ok(());
        };
        Err(ProtocolError::UnexpectedMessage {
            message: "unknown-type",
            why,
        })
    }

    /// Checks and records a message we are about to send. An error means a
    /// bug on this side; nothing should be sent.
    pub fn on_send(&mut self, message: &Message) -> Result<(), ProtocolError> {
        let refuse = |why: String| ProtocolError::SendNotAllowed {
            message: message.kind(),
            why,
        };
        if self.sent_bye {
            return Err(refuse("we already said bye".into()));
        }
        if let Message::Bye(_) = message {
            self.sent_bye = true;
            return Ok(());
        }
        if self.local_hello.is_none() {
            let Message::Hello(hello) = message else {
                return Err(refuse("our first message must be hello".into()));
            };
            if self.role == Role::Listener && self.peer_hello.is_none() {
                return Err(refuse(
                    "the listener answers the caller's hello, it does not speak first".into(),
                ));
            }
            if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.version) {
                return Err(refuse(format!(
                    "this build speaks versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}, not {}",
                    hello.version
                )));
            }
            self.local_hello = Some(hello.clone());
            return Ok(());
        }
        match message {
            Message::Hello(_) => Err(refuse("we already sent our hello".into())),
            Message::Accept(accept) => {
                if self.role == Role::Caller {
                    return Err(refuse("only the listener accepts a call".into()));
                }
                if self.accepted {
                    return Err(refuse("the call was already accepted".into()));
                }
                let Some(version) = self.version() else {
                    return Err(refuse("the caller's hello has not arrived".into()));
                };
                if accept.version != version {
                    return Err(refuse(format!(
                        "the hellos agree on version {version}, not {}",
                        accept.version
                    )));
                }
                self.accepted = true;
                Ok(())
            }
            Message::Video(video) => {
                if !self.accepted {
                    return Err(refuse("the call has not been accepted yet".into()));
                }
                if let Some(peer) = &self.peer_hello {
                    if !peer
                        .receive
                        .accepts(video.format, video.width, video.height)
                    {
                        return Err(refuse(format!(
                            "the peer does not accept {}x{} {} ({})",
                            video.width,
                            video.height,
                            video.format,
                            describe(&peer.receive)
                        )));
                    }
                }
                if let Some((seq, left)) = self.sending_parts {
                    return Err(refuse(format!(
                        "video frame {seq} still lacks {left} bytes of its parts"
                    )));
                }
                if video.total_len.is_some()
                    && self.version().is_some_and(|v| v < VIDEO_PARTS_VERSION)
                {
                    return Err(refuse("frames in parts need version 4".into()));
                }
                check_seq(&mut self.last_sent_seq, video.seq).map_err(|e| refuse(e.to_string()))?;
                if let Some(total) = video.total_len {
                    self.sending_parts = Some((video.seq, total - video.payload.len()));
                }
                Ok(())
            }
            Message::VideoPart(part) => {
                self.sending_parts = next_part(self.sending_parts, part).map_err(refuse)?;
                Ok(())
            }
            Message::Audio(audio) => {
                if !self.accepted {
                    return Err(refuse("the call has not been accepted yet".into()));
                }
                if self.version().is_some_and(|v| v < AUDIO_VERSION) {
                    return Err(refuse("the call speaks a version without audio".into()));
                }
                let theirs = self.peer_hello.as_ref().map(|h| &h.receive.audio);
                if theirs.is_some_and(|list| !list.contains(&audio.format)) {
                    return Err(refuse(format!(
                        "the peer does not take {} audio",
                        audio.format
                    )));
                }
                check_seq(&mut self.last_sent_audio_seq, audio.seq)
                    .map_err(|e| refuse(e.to_string()))
            }
            Message::Microphone { .. } if self.version().is_some_and(|v| v < AUDIO_VERSION) => {
                Err(refuse("the call speaks a version without audio".into()))
            }
            Message::Ping { .. }
            | Message::Pong { .. }
            | Message::Camera { .. }
            | Message::Microphone { .. }
            | Message::Keyframe => Ok(()),
            Message::Bye(_) => Ok(()), // handled above
        }
    }
}

/// Counts the pings a peer sends to spot a flood (PROTOCOL.md 5.4). Plain
/// data with no clock of its own: the caller passes the time each ping
/// arrived, so it is tested without waiting.
///
/// It counts in consecutive one-second windows, each starting at the first
/// ping after the previous window ended; every window is an interval of one
/// second, so a peer it refuses did send more than `MAX_PINGS_PER_SECOND`
/// pings within one second.
#[derive(Debug, Clone, Default)]
pub struct PingMeter {
    window_start: Option<Instant>,
    in_window: u32,
}

/// The window `PingMeter` counts in: the "per second" of `MAX_PINGS_PER_SECOND`.
const PING_WINDOW: Duration = Duration::from_secs(1);

impl PingMeter {
    /// A meter that has seen no ping.
    pub fn new() -> Self {
        PingMeter::default()
    }

    /// Records a ping received at `now`; an error once more than
    /// `MAX_PINGS_PER_SECOND` arrived within one window (end the call with
    /// the error's Bye).
    pub fn on_ping(&mut self, now: Instant) -> Result<(), ProtocolError> {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < PING_WINDOW => {
                self.in_window = self.in_window.saturating_add(1);
            }
            _ => {
                self.window_start = Some(now);
                self.in_window = 1;
            }
        }
        if self.in_window > MAX_PINGS_PER_SECOND {
            return Err(ProtocolError::PingFlood {
                count: self.in_window,
                limit: MAX_PINGS_PER_SECOND,
            });
        }
        Ok(())
    }
}

/// What is left of a frame in parts after `part`, or why `part` does not
/// belong (no frame in parts, another frame's, more bytes than are left).
fn next_part(
    parts: Option<(u64, usize)>,
    part: &super::VideoPart,
) -> Result<Option<(u64, usize)>, String> {
    let Some((seq, left)) = parts else {
        return Err("no video frame in parts is open".into());
    };
    if part.seq != seq {
        return Err(format!(
            "it belongs to frame {}, but frame {seq} is still open",
            part.seq
        ));
    }
    let len = part.payload.len();
    if len > left {
        return Err(format!("{len} bytes, but frame {seq} has only {left} left"));
    }
    Ok((len < left).then_some((seq, left - len)))
}

fn check_seq(last: &mut Option<u64>, seq: u64) -> Result<(), ProtocolError> {
    if let Some(previous) = *last {
        if seq <= previous {
            return Err(ProtocolError::SequenceNotIncreasing { seq, previous });
        }
    }
    *last = Some(seq);
    Ok(())
}

fn describe(receive: &Receive) -> String {
    let codecs: Vec<&str> = receive.codecs.iter().map(|c| c.name()).collect();
    format!(
        "formats [{}] up to {}x{}",
        codecs.join(", "),
        receive.max_width,
        receive.max_height
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::{Accept, Bye, ByeReason, PixelFormat};

    fn hello(version: u32) -> Message {
        Message::Hello(Hello {
            version,
            software_name: "vchat".into(),
            software_version: "test".into(),
            display_name: "t".into(),
            receive: Receive {
                codecs: vec![PixelFormat::I420],
                max_width: 64,
                max_height: 48,
                audio: vec![],
            },
        })
    }

    fn video(seq: u64, width: u32, format: PixelFormat) -> Message {
        let len = format.raw_len(width, 2).unwrap_or(10);
        Message::Video(Video {
            seq,
            capture_time_us: 0,
            width,
            height: 2,
            format,
            payload: Bytes::from(vec![0; len]),
            total_len: None,
        })
    }

    /// A listener that has exchanged hellos and accepted.
    fn connected_listener() -> Session {
        let mut s = Session::new(Role::Listener);
        assert!(
            s.on_send(&hello(PROTOCOL_VERSION)).unwrap_err().is_local(),
            "the caller speaks first"
        );
        s.on_receive(&hello(PROTOCOL_VERSION)).unwrap();
        s.on_send(&hello(PROTOCOL_VERSION)).unwrap();
        s.on_send(&Message::Accept(Accept {
            version: PROTOCOL_VERSION,
        }))
        .unwrap();
        assert!(s.is_connected());
        s
    }

    #[test]
    fn caller_is_connected_only_after_accept() {
        let mut s = Session::new(Role::Caller);
        s.on_send(&hello(PROTOCOL_VERSION)).unwrap();
        s.on_receive(&hello(PROTOCOL_VERSION + 1)).unwrap(); // a newer peer: we speak ours
        assert_eq!(s.version(), Some(PROTOCOL_VERSION));
        assert!(!s.is_connected());
        let early = s.on_receive(&video(1, 2, PixelFormat::I420)).unwrap_err();
        assert!(matches!(
            early,
            ProtocolError::UnexpectedMessage {
                message: "video",
                ..
            }
        ));
        let wrong = s
            .on_receive(&Message::Accept(Accept {
                version: PROTOCOL_VERSION + 1,
            }))
            .unwrap_err();
        assert!(matches!(
            wrong,
            ProtocolError::InvalidValue {
                field: "accept.version",
                ..
            }
        ));
        s.on_receive(&Message::Accept(Accept {
            version: PROTOCOL_VERSION,
        }))
        .unwrap();
        assert!(s.is_connected());
    }

    #[test]
    fn first_message_must_be_hello() {
        let mut s = Session::new(Role::Listener);
        assert!(s.on_receive(&Message::Ping { nonce: 1 }).is_err());
        let mut s = Session::new(Role::Listener);
        assert!(s.on_receive_unknown("wave").is_err());
        let mut s = Session::new(Role::Caller);
        assert!(s.on_send(&Message::Ping { nonce: 1 }).is_err());
    }

    #[test]
    fn old_versions_are_refused_with_unsupported_version() {
        // Version 1 (no knock) is below this build's minimum.
        let mut s = Session::new(Role::Listener);
        let err = s.on_receive(&hello(MIN_PROTOCOL_VERSION - 1)).unwrap_err();
        assert!(matches!(err, ProtocolError::UnsupportedVersion { .. }));
        assert_eq!(err.bye().reason, ByeReason::UnsupportedVersion);
        let mut s = Session::new(Role::Listener);
        // Version 0 cannot be encoded; the session still refuses it.
        let err = s.on_receive(&hello(0)).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::UnsupportedVersion { peer: 0, .. }
        ));
        assert_eq!(err.bye().reason, ByeReason::UnsupportedVersion);
    }

    #[test]
    fn only_the_listener_accepts() {
        let mut s = Session::new(Role::Caller);
        s.on_send(&hello(PROTOCOL_VERSION)).unwrap();
        s.on_receive(&hello(PROTOCOL_VERSION)).unwrap();
        assert!(s
            .on_send(&Message::Accept(Accept {
                version: PROTOCOL_VERSION
            }))
            .is_err());
        let mut l = connected_listener();
        assert!(l
            .on_receive(&Message::Accept(Accept {
                version: PROTOCOL_VERSION
            }))
            .is_err());
    }

    #[test]
    fn video_sequence_numbers_must_increase() {
        let mut s = connected_listener();
        s.on_receive(&video(5, 2, PixelFormat::I420)).unwrap();
        s.on_receive(&video(9, 2, PixelFormat::I420)).unwrap(); // gaps are fine
        let err = s.on_receive(&video(9, 2, PixelFormat::I420)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "video frame sequence number 9 does not increase (previous was 9)"
        );
        assert!(s.on_receive(&video(3, 2, PixelFormat::I420)).is_err());
    }

    #[test]
    fn video_must_match_what_we_advertised() {
        let mut s = connected_listener();
        let err = s.on_receive(&video(1, 2, PixelFormat::Rgb24)).unwrap_err();
        assert!(matches!(err, ProtocolError::NotAccepted { .. }), "{err}");
        let err = s.on_receive(&video(2, 66, PixelFormat::I420)).unwrap_err();
        assert!(matches!(err, ProtocolError::NotAccepted { .. }), "{err}");
        // And we do not send what the peer did not advertise.
        assert!(s
            .on_send(&video(1, 2, PixelFormat::Jpeg))
            .unwrap_err()
            .is_local());
        s.on_send(&video(1, 2, PixelFormat::I420)).unwrap();
    }

    #[test]
    fn nothing_after_bye() {
        let mut s = connected_listener();
        s.on_receive(&Message::Bye(Bye::new(ByeReason::Hangup, "")))
            .unwrap();
        assert!(!s.is_connected());
        assert!(s.on_receive(&Message::Ping { nonce: 1 }).is_err());
        let mut s = connected_listener();
        s.on_send(&Message::Bye(Bye::new(ByeReason::Hangup, "")))
            .unwrap();
        assert!(s.on_send(&Message::Ping { nonce: 1 }).is_err());
    }

    #[test]
    fn payload_length_rules() {
        let Message::Video(v) = video(1, 4, PixelFormat::I420) else {
            unreachable!()
        };
        assert!(check_payload_len(&v, v.payload.len()).is_ok());
        assert!(check_payload_len(&v, v.payload.len() + 1).is_err());
        let jpeg = Video {
            format: PixelFormat::Jpeg,
            ..v
        };
        assert!(check_payload_len(&jpeg, 1).is_ok());
        assert!(check_payload_len(&jpeg, 0).is_err());
        assert!(check_payload_len(&jpeg, MAX_PAYLOAD_LEN + 1).is_err());
    }

    #[test]
    fn bye_text_from_errors_is_bounded_and_clean() {
        let err = ProtocolError::InvalidValue {
            field: "hello.name",
            problem: format!("{}\u{7}\n", "é".repeat(300)),
        };
        let bye = err.bye();
        assert_eq!(bye.reason, ByeReason::ProtocolError);
        assert!(bye.text.len() <= MAX_BYE_TEXT_LEN);
        assert!(check_message(&Message::Bye(bye)).is_ok());
    }
}
