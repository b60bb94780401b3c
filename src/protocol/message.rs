//! The messages peers exchange after the TLS handshake, as Rust types.
//!
//! These are plain data: how they look on the wire is in `codec.rs` (and
//! PROTOCOL.md), what makes them acceptable is in `validate.rs`.

use bytes::Bytes;

use super::PixelFormat;

/// One message of the vchat protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The first message of each side: who it is and what it can receive.
    Hello(Hello),
    /// Sent by the listener only: the call is accepted. The caller treats the
    /// call as connected only once this arrives (TLS 1.3 reports a rejected
    /// client certificate only on the caller's first read).
    Accept(Accept),
    /// One picture.
    Video(Video),
    /// The next part of a picture sent in parts (version 4).
    VideoPart(VideoPart),
    /// 20 ms of the sender's voice (version 4).
    Audio(Audio),
    /// Asks the peer to answer with a [`Message::Pong`] echoing `nonce`.
    Ping {
        /// Opaque to the receiver; the sender may put its clock in it to
        /// measure the round-trip time when the Pong comes back.
        nonce: u64,
    },
    /// The answer to a [`Message::Ping`].
    Pong {
        /// The `nonce` of the Ping being answered.
        nonce: u64,
        /// The answering side's clock when it wrote this pong, on the clock of
        /// its `video.time_us` (version 3, optional): with the round-trip time
        /// it gives the offset between the two clocks, so latency across two
        /// machines is not a mix of two clocks.
        time_us: Option<u64>,
    },
    /// The sender's decoder cannot go on without a keyframe (it is new, or
    /// frames were lost): the peer's next `h264` frame should be one.
    /// Version 3.
    Keyframe,
    /// The sender turned its camera on or off (no video follows while off).
    Camera {
        /// Whether the camera is now on.
        on: bool,
    },
    /// The sender muted or unmuted its microphone (no audio follows while
    /// muted). Version 4.
    Microphone {
        /// Whether the microphone is now on (not muted).
        on: bool,
    },
    /// The last message of a call: why the sender is hanging up.
    Bye(Bye),
}

impl Message {
    /// The message's type name, as it appears on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Accept(_) => "accept",
            Message::Video(_) => "video",
            Message::VideoPart(_) => "video_part",
            Message::Audio(_) => "audio",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::Keyframe => "keyframe",
            Message::Camera { .. } => "camera",
            Message::Microphone { .. } => "microphone",
            Message::Bye(_) => "bye",
        }
    }
}

/// Who a peer is and what it can receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The newest protocol version the sender speaks (at least 1).
    pub version: u32,
    /// The sending program, e.g. "vchat".
    pub software_name: String,
    /// The sending program's version, e.g. "0.1.0".
    pub software_version: String,
    /// The name the user chose to show the peer. Informational only: the
    /// peer's identity is its pinned certificate, never this name.
    pub display_name: String,
    /// What video the sender accepts.
    pub receive: Receive,
}

/// The video a peer accepts: anything else it receives is a protocol error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receive {
    /// Formats the peer can decode, most preferred first. May be empty (the
    /// peer only sends). Unknown names from newer peers are dropped on decode.
    pub codecs: Vec<PixelFormat>,
    /// Widest frame the peer accepts, `1..=MAX_WIDTH`.
    pub max_width: u32,
    /// Tallest frame the peer accepts, `1..=MAX_HEIGHT`.
    pub max_height: u32,
    /// Audio formats the peer can decode, most preferred first (version 4;
    /// empty from older peers and from peers that take no audio). Unknown
    /// names are dropped on decode.
    pub audio: Vec<AudioFormat>,
}

impl Receive {
    /// Whether a frame of this format and size is one the peer said it accepts.
    pub fn accepts(&self, format: PixelFormat, width: u32, height: u32) -> bool {
        self.codecs.contains(&format) && width <= self.max_width && height <= self.max_height
    }

    /// The size a `width` x `height` picture is sent at (PROTOCOL.md 5.3.3):
    /// unchanged if it fits both limits, else scaled down keeping the aspect
    /// ratio (each dimension rounded down, at least 1) so that it fits both,
    /// never cropped. Exact integer arithmetic, so both peers agree.
    pub fn fit(&self, width: u32, height: u32) -> (u32, u32) {
        fit_size(width, height, self.max_width, self.max_height)
    }
}

/// [`Receive::fit`] for limits given on their own (a sender's encoder keeps
/// only the two numbers).
pub fn fit_size(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let (max_w, max_h) = (u64::from(max_width.max(1)), u64::from(max_height.max(1)));
    if w <= max_w && h <= max_h {
        return (width.max(1), height.max(1));
    }
    // Each quotient is at most the u32 dimension it scales, so it fits.
    let narrow = |v: u64| u32::try_from(v.max(1)).unwrap_or(u32::MAX);
    if w * max_h >= h * max_w {
        (narrow(max_w), narrow(h * max_w / w))
    } else {
        (narrow(w * max_h / h), narrow(max_h))
    }
}

/// The listener accepts the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// The protocol version the call speaks from now on: the lower of the two
    /// Hello versions.
    pub version: u32,
}

/// One video frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Sequence number: strictly increasing within a call (gaps are allowed,
    /// a sender may drop frames).
    pub seq: u64,
    /// Capture time in microseconds on the sender's clock, with an epoch of
    /// the sender's choosing. Only meaningful to the sender, or to a receiver
    /// that compares differences between frames or corrects them with the
    /// round-trip time.
    pub capture_time_us: u64,
    /// Width in pixels, `1..=MAX_WIDTH`.
    pub width: u32,
    /// Height in pixels, `1..=MAX_HEIGHT`.
    pub height: u32,
    /// How to read `payload`.
    pub format: PixelFormat,
    /// The picture. For raw formats exactly `format.raw_len(width, height)`
    /// bytes; for JPEG `1..=MAX_PAYLOAD_LEN` bytes. On decode this is a slice of
    /// the receive buffer (no copy); on encode it is written as one slice.
    /// With `total_len`, only the first part of it.
    pub payload: Bytes,
    /// Version 4: the whole payload's length when it comes in parts, this
    /// message holding the first and [`Message::VideoPart`]s the rest, so
    /// that voice is never stuck behind a large frame. `None`: whole.
    pub total_len: Option<usize>,
}

/// The next part of a video frame sent in parts (version 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoPart {
    /// The frame's `seq`.
    pub seq: u64,
    /// The next bytes of its payload, at least 1.
    pub payload: Bytes,
}

/// One packet of the sender's voice (version 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// Sequence number: strictly increasing within a call per sender, counted
    /// apart from video's. A gap is audio the sender never sent (it was
    /// muted, or the packet was too old to be worth sending).
    pub seq: u64,
    /// Capture time of the packet's first sample, in microseconds on the
    /// clock and epoch of the sender's `video.time_us`: the receiver lines
    /// the two up for lip sync.
    pub capture_time_us: u64,
    /// How to read `payload`.
    pub format: AudioFormat,
    /// One packet of `format`, `1..=MAX_AUDIO_PAYLOAD_LEN` bytes.
    pub payload: Bytes,
}

/// An audio format on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// One Opus packet (RFC 6716) of 48 kHz mono audio (`"opus"`).
    Opus,
}

impl AudioFormat {
    /// Every audio format this build knows.
    pub const ALL: [AudioFormat; 1] = [AudioFormat::Opus];

    /// The name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::Opus => "opus",
        }
    }

    /// The format a wire name stands for, if this build knows it.
    pub fn from_wire_name(name: &str) -> Option<Self> {
        AudioFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The end of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    /// Why, for programs.
    pub reason: ByeReason,
    /// Why, for people: one line of UTF-8, at most `MAX_BYE_TEXT_LEN` bytes,
    /// no control characters. May be empty.
    pub text: String,
}

impl Bye {
    /// A Bye with this reason and text.
    pub fn new(reason: ByeReason, text: impl Into<String>) -> Self {
        Bye {
            reason,
            text: text.into(),
        }
    }
}

/// Why a call ends, as a short code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByeReason {
    /// The user hung up (`"hangup"`).
    Hangup,
    /// The listener's user declined the call (`"declined"`).
    Declined,
    /// The listener is already in a call (`"busy"`).
    Busy,
    /// No common protocol version (`"unsupported_version"`).
    UnsupportedVersion,
    /// The peer broke the protocol; the text names the problem (`"protocol_error"`).
    ProtocolError,
    /// The sender failed on its own side, e.g. its camera died (`"internal_error"`).
    InternalError,
    /// A code this version does not know (sent as `"other"`).
    Other,
}

impl ByeReason {
    /// Every reason, for tests and documentation.
    pub const ALL: [ByeReason; 7] = [
        ByeReason::Hangup,
        ByeReason::Declined,
        ByeReason::Busy,
        ByeReason::UnsupportedVersion,
        ByeReason::ProtocolError,
        ByeReason::InternalError,
        ByeReason::Other,
    ];

    /// The code used on the wire.
    pub fn code(self) -> &'static str {
        match self {
            ByeReason::Hangup => "hangup",
            ByeReason::Declined => "declined",
            ByeReason::Busy => "busy",
            ByeReason::UnsupportedVersion => "unsupported_version",
            ByeReason::ProtocolError => "protocol_error",
            ByeReason::InternalError => "internal_error",
            ByeReason::Other => "other",
        }
    }

    /// The reason for a wire code; codes this version does not know are `Other`.
    pub fn from_code(code: &str) -> Self {
        ByeReason::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .unwrap_or(ByeReason::Other)
    }
}
