//! The pure codec: messages to bytes and back, with no I/O and no clocks.
//!
//! A frame is a 4-byte big-endian length `N` followed by one CBOR item of
//! exactly `N` bytes: the array `[type, body]`, where `type` is a text string
//! and `body` a map with text keys (PROTOCOL.md has every field).
//!
//! Video payloads never pass through serde. [`encode_frame`] returns the
//! frame as a small head (prefix, CBOR up to and including the payload's
//! byte-string head) and the payload `Bytes` itself, so a writer sends the
//! payload straight from the caller's buffer; [`decode_frame`] splits the
//! frame off the receive buffer and hands out the payload as a `Bytes` slice
//! of it, without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ciborium_ll::Header;

use super::cbor::{put_bool, put_head, put_text, put_uint, Reader};
use super::limits::{
    LENGTH_PREFIX_LEN, MAX_AUDIO_PAYLOAD_LEN, MAX_BYE_TEXT_LEN, MAX_CODECS, MAX_DISPLAY_NAME_LEN,
    MAX_HEIGHT, MAX_IDENT_LEN, MAX_MAP_ENTRIES, MAX_MESSAGE_LEN, MAX_PAYLOAD_LEN, MAX_SOFTWARE_LEN,
    MAX_WIDTH,
};
use super::validate::check_message;
use super::{
    Accept, Audio, AudioFormat, Bye, ByeReason, Hello, Message, PixelFormat, ProtocolError,
    Receive, Video, VideoPart,
};

/// Nesting depth of a message body's field values (the outer array is 1, the
/// body map 2).
const FIELD_DEPTH: usize = 3;

/// One encoded frame, in two parts: `head` then `payload` are the frame's
/// bytes, in that order. `payload` is empty except for video.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// Length prefix and CBOR, up to and including the payload's head.
    pub head: Bytes,
    /// The video payload (shares the caller's buffer), or empty.
    pub payload: Bytes,
}

impl EncodedFrame {
    /// Total bytes on the wire, length prefix included.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// Never true: a frame has at least its prefix.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of decoding one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A message this version knows.
    Message(Message),
    /// A well-formed message of a type this version does not know: ignored
    /// (see PROTOCOL.md, "Versions").
    Unknown {
        /// Its type name.
        kind: String,
    },
}

/// Encodes `message` as a frame, after checking it against the limits so we
/// never send what a peer must refuse.
pub fn encode_frame(message: &Message) -> Result<EncodedFrame, ProtocolError> {
    let mut head = BytesMut::with_capacity(128);
    let payload = encode_head_into(message, &mut head)?;
    Ok(EncodedFrame {
        head: head.freeze(),
        payload,
    })
}

/// As [`encode_frame`], writing the head into `head` (cleared first) so a
/// writer can reuse one buffer for every message; returns the payload.
pub fn encode_head_into(message: &Message, head: &mut BytesMut) -> Result<Bytes, ProtocolError> {
    check_message(message)?;
    head.clear();
    head.put_u32(0); // patched below
    put_head(head, Header::Array(Some(2)));
    put_text(head, message.kind());
    let mut payload = Bytes::new();
    match message {
        Message::Hello(hello) => encode_hello(head, hello),
        Message::Accept(Accept { version }) => {
            put_head(head, Header::Map(Some(1)));
            put_text(head, "version");
            put_uint(head, u64::from(*version));
        }
        Message::Video(video) => {
            put_head(
                head,
                Header::Map(Some(6 + usize::from(video.total_len.is_some()))),
            );
            put_text(head, "seq");
            put_uint(head, video.seq);
            put_text(head, "time_us");
            put_uint(head, video.capture_time_us);
            put_text(head, "width");
            put_uint(head, u64::from(video.width));
            put_text(head, "height");
            put_uint(head, u64::from(video.height));
            put_text(head, "format");
            put_text(head, video.format.name());
            if let Some(total) = video.total_len {
                put_text(head, "total_len");
                put_uint(head, total as u64);
            }
            put_text(head, "payload");
            put_head(head, Header::Bytes(Some(video.payload.len())));
            payload = video.payload.clone();
        }
        Message::VideoPart(part) => {
            put_head(head, Header::Map(Some(2)));
            put_text(head, "seq");
            put_uint(head, part.seq);
            put_text(head, "payload");
            put_head(head, Header::Bytes(Some(part.payload.len())));
            payload = part.payload.clone();
        }
        Message::Audio(audio) => {
            put_head(head, Header::Map(Some(4)));
            put_text(head, "seq");
            put_uint(head, audio.seq);
            put_text(head, "time_us");
            put_uint(head, audio.capture_time_us);
            put_text(head, "format");
            put_text(head, audio.format.name());
            put_text(head, "payload");
            put_head(head, Header::Bytes(Some(audio.payload.len())));
            payload = audio.payload.clone();
        }
        Message::Ping { nonce }
        | Message::Pong {
            nonce,
            time_us: None,
        } => {
            put_head(head, Header::Map(Some(1)));
            put_text(head, "nonce");
            put_uint(head, *nonce);
        }
        Message::Pong {
            nonce,
            time_us: Some(time_us),
        } => {
            put_head(head, Header::Map(Some(2)));
            put_text(head, "nonce");
            put_uint(head, *nonce);
            put_text(head, "time_us");
            put_uint(head, *time_us);
        }
        Message::Keyframe => put_head(head, Header::Map(Some(0))),
        Message::Camera { on } | Message::Microphone { on } => {
            put_head(head, Header::Map(Some(1)));
            put_text(head, "on");
            put_bool(head, *on);
        }
        Message::Bye(bye) => {
            put_head(head, Header::Map(Some(2)));
            put_text(head, "reason");
            put_text(head, bye.reason.code());
            put_text(head, "text");
            put_text(head, &bye.text);
        }
    }
    let len = head.len() - LENGTH_PREFIX_LEN + payload.len();
    if len > MAX_MESSAGE_LEN {
        return Err(ProtocolError::LimitExceeded {
            what: "message length",
            value: len as u64,
            limit: MAX_MESSAGE_LEN as u64,
        });
    }
    let prefix = u32::try_from(len).map_err(|_| ProtocolError::LimitExceeded {
        what: "message length",
        value: len as u64,
        limit: MAX_MESSAGE_LEN as u64,
    })?;
    if let Some(slot) = head.get_mut(..LENGTH_PREFIX_LEN) {
        slot.copy_from_slice(&prefix.to_be_bytes());
    }
    Ok(payload)
}

fn encode_hello(dst: &mut BytesMut, hello: &Hello) {
    put_head(dst, Header::Map(Some(5)));
    put_text(dst, "version");
    put_uint(dst, u64::from(hello.version));
    put_text(dst, "software");
    put_text(dst, &hello.software_name);
    put_text(dst, "software_version");
    put_text(dst, &hello.software_version);
    put_text(dst, "name");
    put_text(dst, &hello.display_name);
    put_text(dst, "receive");
    put_head(dst, Header::Map(Some(4)));
    put_text(dst, "codecs");
    put_head(dst, Header::Array(Some(hello.receive.codecs.len())));
    for codec in &hello.receive.codecs {
        put_text(dst, codec.name());
    }
    put_text(dst, "max_width");
    put_uint(dst, u64::from(hello.receive.max_width));
    put_text(dst, "max_height");
    put_uint(dst, u64::from(hello.receive.max_height));
    put_text(dst, "audio");
    put_head(dst, Header::Array(Some(hello.receive.audio.len())));
    for format in &hello.receive.audio {
        put_text(dst, format.name());
    }
}

/// Encodes `message` as one contiguous frame appended to `dst` (this copies
/// the payload; writers should prefer [`encode_frame`]).
pub fn encode(message: &Message, dst: &mut BytesMut) -> Result<(), ProtocolError> {
    let frame = encode_frame(message)?;
    dst.reserve(frame.len());
    dst.extend_from_slice(&frame.head);
    dst.extend_from_slice(&frame.payload);
    Ok(())
}

/// The message length a length prefix declares, refused if it is 0 or above
/// `MAX_MESSAGE_LEN`: this needs only the 4 prefix bytes.
pub fn message_len(prefix: [u8; LENGTH_PREFIX_LEN]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(prefix);
    if len == 0 {
        return Err(ProtocolError::EmptyMessage);
    }
    match usize::try_from(len) {
        Ok(len) if len <= MAX_MESSAGE_LEN => Ok(len),
        _ => Err(ProtocolError::MessageTooLong {
            len: u64::from(len),
            max: MAX_MESSAGE_LEN as u64,
        }),
    }
}

/// The total frame length (prefix included) announced at the front of `buf`,
/// if the prefix has arrived.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    match buf.first_chunk::<LENGTH_PREFIX_LEN>() {
        Some(prefix) => Ok(Some(LENGTH_PREFIX_LEN + message_len(*prefix)?)),
        None => Ok(None),
    }
}

/// Decodes the first frame in `buf` if it is complete, removing it from
/// `buf`; returns `Ok(None)` if more bytes are needed. Once the prefix has
/// passed its check, `buf` reserves room for the rest of the frame so the
/// reader fills it without reallocating.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Decoded>, ProtocolError> {
    let Some(total) = frame_len(buf)? else {
        return Ok(None);
    };
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(LENGTH_PREFIX_LEN);
    decode_message(frame).map(Some)
}

/// Decodes one message: `item` is the CBOR after the length prefix, exactly
/// one data item. A video payload is returned as a slice of `item`.
pub fn decode_message(item: Bytes) -> Result<Decoded, ProtocolError> {
    let mut r = Reader::new(&item);
    // Any other element count is malformed (checked against the bytes left first).
    if r.array("message", usize::MAX)? != 2 {
        return Err(ProtocolError::Malformed {
            offset: 0,
            problem: "a message must be the array [type, body]",
        });
    }
    let kind = r.text("message type", MAX_IDENT_LEN)?;
    let decoded = match kind {
        "hello" => Decoded::Message(Message::Hello(decode_hello(&mut r)?)),
        "accept" => Decoded::Message(Message::Accept(decode_accept(&mut r)?)),
        "video" => {
            let (video, range) = decode_video(&mut r)?;
            Decoded::Message(Message::Video(Video {
                payload: item.slice(range),
                ..video
            }))
        }
        "ping" => Decoded::Message(Message::Ping {
            nonce: decode_ping(&mut r)?,
        }),
        "pong" => {
            let (nonce, time_us) = decode_pong(&mut r)?;
            Decoded::Message(Message::Pong { nonce, time_us })
        }
        "keyframe" => {
            fields(&mut r, "keyframe body", |_, _| Ok(false))?;
            Decoded::Message(Message::Keyframe)
        }
        "video_part" => {
            let (seq, range) = decode_video_part(&mut r)?;
            Decoded::Message(Message::VideoPart(VideoPart {
                seq,
                payload: item.slice(range),
            }))
        }
        "audio" => {
            let (audio, range) = decode_audio(&mut r)?;
            Decoded::Message(Message::Audio(Audio {
                payload: item.slice(range),
                ..audio
            }))
        }
        "camera" => Decoded::Message(Message::Camera {
            on: decode_on_off(&mut r, "camera", "camera.on")?,
        }),
        "microphone" => Decoded::Message(Message::Microphone {
            on: decode_on_off(&mut r, "microphone", "microphone.on")?,
        }),
        "bye" => Decoded::Message(Message::Bye(decode_bye(&mut r)?)),
        other => {
            let kind = other.to_owned();
            fields(&mut r, "unknown message body", |_, _| Ok(false))?;
            Decoded::Unknown { kind }
        }
    };
    if r.remaining() != 0 {
        return Err(ProtocolError::Malformed {
            offset: r.pos(),
            problem: "bytes after the end of the message's CBOR item",
        });
    }
    if let Decoded::Message(message) = &decoded {
        check_message(message)?;
    }
    Ok(decoded)
}

/// Walks a body map whose values sit at `FIELD_DEPTH`: `field` is called
/// with each key and returns whether it read the value; values of unknown
/// keys are skipped.
fn fields<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    field: impl FnMut(&mut Reader<'a>, &'a str) -> Result<bool, ProtocolError>,
) -> Result<(), ProtocolError> {
    fields_at(r, what, FIELD_DEPTH, field)
}

/// As [`fields`], for a map whose values sit at nesting `depth`.
fn fields_at<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    depth: usize,
    mut field: impl FnMut(&mut Reader<'a>, &'a str) -> Result<bool, ProtocolError>,
) -> Result<(), ProtocolError> {
    let entries = r.map(what, MAX_MAP_ENTRIES)?;
    for _ in 0..entries {
        let key = r.text("map key", MAX_IDENT_LEN)?;
        if !field(r, key)? {
            r.skip(depth)?;
        }
    }
    Ok(())
}

/// Stores a field's value, refusing a second one.
fn set<T>(
    slot: &mut Option<T>,
    value: T,
    message: &'static str,
    field: &'static str,
) -> Result<bool, ProtocolError> {
    if slot.replace(value).is_some() {
        return Err(ProtocolError::DuplicateField { message, field });
    }
    Ok(true)
}

/// A required field's value.
fn required<T>(
    slot: Option<T>,
    message: &'static str,
    field: &'static str,
) -> Result<T, ProtocolError> {
    slot.ok_or(ProtocolError::MissingField { message, field })
}

fn u32_field(r: &mut Reader<'_>, field: &'static str) -> Result<u32, ProtocolError> {
    // The bound makes the conversion infallible; map_err keeps it panic-free.
    let value = r.uint_max(field, u64::from(u32::MAX))?;
    u32::try_from(value).map_err(|_| ProtocolError::LimitExceeded {
        what: field,
        value,
        limit: u64::from(u32::MAX),
    })
}

fn decode_hello(r: &mut Reader<'_>) -> Result<Hello, ProtocolError> {
    const M: &str = "hello";
    let (mut version, mut software, mut software_version, mut name, mut receive) =
        (None, None, None, None, None);
    fields(r, "hello body", |r, key| match key {
        "version" => set(&mut version, u32_field(r, "hello.version")?, M, "version"),
        "software" => set(
            &mut software,
            r.text("hello.software", MAX_SOFTWARE_LEN)?,
            M,
            "software",
        ),
        "software_version" => set(
            &mut software_version,
            r.text("hello.software_version", MAX_SOFTWARE_LEN)?,
            M,
            "software_version",
        ),
        "name" => set(
            &mut name,
            r.text("hello.name", MAX_DISPLAY_NAME_LEN)?,
            M,
            "name",
        ),
        "receive" => set(&mut receive, decode_receive(r)?, M, "receive"),
        _ => Ok(false),
    })?;
    Ok(Hello {
        version: required(version, M, "version")?,
        software_name: required(software, M, "software")?.to_owned(),
        software_version: required(software_version, M, "software_version")?.to_owned(),
        display_name: required(name, M, "name")?.to_owned(),
        receive: required(receive, M, "receive")?,
    })
}

fn decode_receive(r: &mut Reader<'_>) -> Result<Receive, ProtocolError> {
    const M: &str = "hello.receive";
    let (mut codecs, mut max_width, mut max_height, mut audio) = (None, None, None, None);
    fields_at(r, "hello.receive", FIELD_DEPTH + 1, |r, key| match key {
        "codecs" => {
            let count = r.array("hello.receive.codecs", MAX_CODECS)?;
            let mut list = Vec::with_capacity(count);
            for _ in 0..count {
                let name = r.text("hello.receive.codecs entry", MAX_IDENT_LEN)?;
                // Codecs from newer versions are not ours to decode: drop them.
                if let Some(format) = PixelFormat::from_wire_name(name) {
                    if !list.contains(&format) {
                        list.push(format);
                    }
                }
            }
            set(&mut codecs, list, M, "codecs")
        }
        "audio" => {
            let count = r.array("hello.receive.audio", MAX_CODECS)?;
            let mut list = Vec::with_capacity(count);
            for _ in 0..count {
                let name = r.text("hello.receive.audio entry", MAX_IDENT_LEN)?;
                if let Some(format) = AudioFormat::from_wire_name(name) {
                    if !list.contains(&format) {
                        list.push(format);
                    }
                }
            }
            set(&mut audio, list, M, "audio")
        }
        // Larger limits from newer peers mean "as large as this version allows".
        "max_width" => set(
            &mut max_width,
            r.uint("hello.receive.max_width")?.min(u64::from(MAX_WIDTH)),
            M,
            "max_width",
        ),
        "max_height" => set(
            &mut max_height,
            r.uint("hello.receive.max_height")?
                .min(u64::from(MAX_HEIGHT)),
            M,
            "max_height",
        ),
        _ => Ok(false),
    })?;
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(Receive {
        codecs: required(codecs, M, "codecs")?,
        max_width: clamp(required(max_width, M, "max_width")?),
        max_height: clamp(required(max_height, M, "max_height")?),
        // Optional: peers before version 4 take no audio.
        audio: audio.unwrap_or_default(),
    })
}

fn decode_accept(r: &mut Reader<'_>) -> Result<Accept, ProtocolError> {
    let mut version = None;
    fields(r, "accept body", |r, key| match key {
        "version" => set(
            &mut version,
            u32_field(r, "accept.version")?,
            "accept",
            "version",
        ),
        _ => Ok(false),
    })?;
    Ok(Accept {
        version: required(version, "accept", "version")?,
    })
}

/// Decodes a video body; the payload is returned as its range in the message.
fn decode_video(r: &mut Reader<'_>) -> Result<(Video, std::ops::Range<usize>), ProtocolError> {
    const M: &str = "video";
    let (mut seq, mut time, mut width, mut height, mut format, mut payload) =
        (None, None, None, None, None, None);
    let mut total_len = None;
    fields(r, "video body", |r, key| match key {
        "total_len" => set(
            &mut total_len,
            r.uint_max("video.total_len", MAX_PAYLOAD_LEN as u64)?,
            M,
            "total_len",
        ),
        "seq" => set(&mut seq, r.uint("video.seq")?, M, "seq"),
        "time_us" => set(&mut time, r.uint("video.time_us")?, M, "time_us"),
        "width" => set(
            &mut width,
            r.uint_max("video.width", u64::from(MAX_WIDTH))?,
            M,
            "width",
        ),
        "height" => set(
            &mut height,
            r.uint_max("video.height", u64::from(MAX_HEIGHT))?,
            M,
            "height",
        ),
        "format" => {
            let name = r.text("video.format", MAX_IDENT_LEN)?;
            let parsed =
                PixelFormat::from_wire_name(name).ok_or_else(|| ProtocolError::InvalidValue {
                    field: "video.format",
                    problem: format!("unknown pixel format {name:?}"),
                })?;
            set(&mut format, parsed, M, "format")
        }
        "payload" => set(
            &mut payload,
            r.byte_range("video.payload", MAX_PAYLOAD_LEN)?,
            M,
            "payload",
        ),
        _ => Ok(false),
    })?;
    // Both bounded by MAX_WIDTH / MAX_HEIGHT above, so they fit in u32.
    let dim = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let video = Video {
        seq: required(seq, M, "seq")?,
        capture_time_us: required(time, M, "time_us")?,
        width: dim(required(width, M, "width")?),
        height: dim(required(height, M, "height")?),
        format: required(format, M, "format")?,
        payload: Bytes::new(),
        // Bounded by MAX_PAYLOAD_LEN above.
        total_len: total_len.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let range = required(payload, M, "payload")?;
    // Check the declared length before the caller slices: same rule as check_message.
    super::validate::check_video_lengths(&video, range.len())?;
    Ok((video, range))
}

/// Decodes a video_part body: the frame's seq and the payload's range.
fn decode_video_part(r: &mut Reader<'_>) -> Result<(u64, std::ops::Range<usize>), ProtocolError> {
    const M: &str = "video_part";
    let (mut seq, mut payload) = (None, None);
    fields(r, "video_part body", |r, key| match key {
        "seq" => set(&mut seq, r.uint("video_part.seq")?, M, "seq"),
        "payload" => set(
            &mut payload,
            r.byte_range("video_part.payload", MAX_PAYLOAD_LEN)?,
            M,
            "payload",
        ),
        _ => Ok(false),
    })?;
    Ok((required(seq, M, "seq")?, required(payload, M, "payload")?))
}

fn decode_ping(r: &mut Reader<'_>) -> Result<u64, ProtocolError> {
    let mut nonce = None;
    fields(r, "ping body", |r, key| match key {
        "nonce" => set(&mut nonce, r.uint("ping.nonce")?, "ping", "nonce"),
        _ => Ok(false),
    })?;
    required(nonce, "ping", "nonce")
}

/// A pong's nonce and, from version 3 peers, the time it was written.
fn decode_pong(r: &mut Reader<'_>) -> Result<(u64, Option<u64>), ProtocolError> {
    let (mut nonce, mut time_us) = (None, None);
    fields(r, "pong body", |r, key| match key {
        "nonce" => set(&mut nonce, r.uint("pong.nonce")?, "pong", "nonce"),
        "time_us" => set(&mut time_us, r.uint("pong.time_us")?, "pong", "time_us"),
        _ => Ok(false),
    })?;
    Ok((required(nonce, "pong", "nonce")?, time_us))
}

/// The `on` of a `camera` or `microphone` body.
fn decode_on_off(
    r: &mut Reader<'_>,
    message: &'static str,
    field: &'static str,
) -> Result<bool, ProtocolError> {
    let mut on = None;
    fields(r, "on/off body", |r, key| match key {
        "on" => set(&mut on, r.bool(field)?, message, "on"),
        _ => Ok(false),
    })?;
    required(on, message, "on")
}

/// Decodes an audio body; the payload is returned as its range in the message.
fn decode_audio(r: &mut Reader<'_>) -> Result<(Audio, std::ops::Range<usize>), ProtocolError> {
    const M: &str = "audio";
    let (mut seq, mut time, mut format, mut payload) = (None, None, None, None);
    fields(r, "audio body", |r, key| match key {
        "seq" => set(&mut seq, r.uint("audio.seq")?, M, "seq"),
        "time_us" => set(&mut time, r.uint("audio.time_us")?, M, "time_us"),
        "format" => {
            let name = r.text("audio.format", MAX_IDENT_LEN)?;
            let parsed =
                AudioFormat::from_wire_name(name).ok_or_else(|| ProtocolError::InvalidValue {
                    field: "audio.format",
                    problem: format!("unknown audio format {name:?}"),
                })?;
            set(&mut format, parsed, M, "format")
        }
        "payload" => set(
            &mut payload,
            r.byte_range("audio.payload", MAX_AUDIO_PAYLOAD_LEN)?,
            M,
            "payload",
        ),
        _ => Ok(false),
    })?;
    let audio = Audio {
        seq: required(seq, M, "seq")?,
        capture_time_us: required(time, M, "time_us")?,
        format: required(format, M, "format")?,
        payload: Bytes::new(),
    };
    Ok((audio, required(payload, M, "payload")?))
}

fn decode_bye(r: &mut Reader<'_>) -> Result<Bye, ProtocolError> {
    let (mut reason, mut text) = (None, None);
    fields(r, "bye body", |r, key| match key {
        "reason" => set(
            &mut reason,
            ByeReason::from_code(r.text("bye.reason", MAX_IDENT_LEN)?),
            "bye",
            "reason",
        ),
        "text" => set(
            &mut text,
            r.text("bye.text", MAX_BYE_TEXT_LEN)?,
            "bye",
            "text",
        ),
        _ => Ok(false),
    })?;
    Ok(Bye {
        reason: required(reason, "bye", "reason")?,
        text: required(text, "bye", "text")?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(width: u32, height: u32, format: PixelFormat, payload_len: usize) -> Message {
        Message::Video(Video {
            seq: 7,
            capture_time_us: 1_000_000,
            width,
            height,
            format,
            payload: Bytes::from(vec![0xAB; payload_len]),
            total_len: None,
        })
    }

    fn frame_of(cbor: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(cbor.len() as u32);
        buf.extend_from_slice(cbor);
        buf
    }

    fn decode_all(mut buf: BytesMut) -> Result<Decoded, ProtocolError> {
        let decoded = decode_frame(&mut buf)?.ok_or(ProtocolError::EmptyMessage)?;
        assert!(buf.is_empty(), "one frame, fully consumed");
        Ok(decoded)
    }

    #[test]
    fn video_round_trips_without_copying_the_payload() {
        let message = video(4, 2, PixelFormat::Rgb24, 24);
        let Message::Video(original) = &message else {
            unreachable!()
        };
        let frame = encode_frame(&message).unwrap();
        // Encode: the payload is the caller's buffer, not a copy.
        assert_eq!(frame.payload.as_ptr(), original.payload.as_ptr());

        let mut buf = BytesMut::new();
        encode(&message, &mut buf).unwrap();
        let (start, len) = (buf.as_ptr() as usize, buf.len());
        let Decoded::Message(Message::Video(decoded)) = decode_all(buf).unwrap() else {
            panic!("not a video")
        };
        assert_eq!(Message::Video(decoded.clone()), message);
        // Decode: the payload points into the receive buffer's memory.
        let at = decoded.payload.as_ptr() as usize;
        assert!(at > start && at + decoded.payload.len() <= start + len);
    }

    #[test]
    fn prefix_limit_is_checked_on_four_bytes_without_allocating() {
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        let before = buf.capacity();
        let err = decode_frame(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::MessageTooLong {
                    len: 0xFFFF_FFFF,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(buf.capacity(), before);
        let too_long = ((MAX_MESSAGE_LEN + 1) as u32).to_be_bytes();
        assert!(matches!(
            message_len(too_long),
            Err(ProtocolError::MessageTooLong { .. })
        ));
        assert_eq!(
            message_len((MAX_MESSAGE_LEN as u32).to_be_bytes()).unwrap(),
            MAX_MESSAGE_LEN
        );
        assert!(matches!(
            message_len([0; 4]),
            Err(ProtocolError::EmptyMessage)
        ));
    }

    #[test]
    fn partial_frames_wait_and_reserve_exactly_the_rest() {
        let mut full = BytesMut::new();
        encode(&Message::Ping { nonce: 42 }, &mut full).unwrap();
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode_frame(&mut part).unwrap(), None, "cut at {cut}");
            assert_eq!(part.len(), cut, "nothing consumed");
            if cut >= LENGTH_PREFIX_LEN {
                assert!(part.capacity() >= full.len());
            }
        }
    }

    #[test]
    fn two_frames_in_one_buffer_decode_in_order() {
        let mut buf = BytesMut::new();
        encode(&Message::Ping { nonce: 1 }, &mut buf).unwrap();
        encode(
            &Message::Pong {
                nonce: 1,
                time_us: None,
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            decode_frame(&mut buf).unwrap(),
            Some(Decoded::Message(Message::Ping { nonce: 1 }))
        );
        assert_eq!(
            decode_frame(&mut buf).unwrap(),
            Some(Decoded::Message(Message::Pong {
                nonce: 1,
                time_us: None
            }))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn encoder_refuses_what_a_peer_would_refuse() {
        let err = encode_frame(&video(640, 480, PixelFormat::Rgb24, 1000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "video frame 640x480 rgb24 declares 1000 payload bytes, expected 921600"
        );
        assert!(encode_frame(&video(MAX_WIDTH + 1, 1, PixelFormat::Jpeg, 10)).is_err());
        assert!(encode_frame(&video(0, 1, PixelFormat::Jpeg, 10)).is_err());
        assert!(encode_frame(&video(1, 1, PixelFormat::Jpeg, 0)).is_err());
        let bye = Message::Bye(Bye::new(
            ByeReason::Hangup,
            "x".repeat(MAX_BYE_TEXT_LEN + 1),
        ));
        assert!(matches!(
            encode_frame(&bye),
            Err(ProtocolError::LimitExceeded { .. })
        ));
    }

    #[test]
    fn huge_declared_string_in_a_small_frame_is_refused() {
        // ["video", {"payload": h'' declared as 2^64-1 bytes}]
        let mut cbor = vec![0x82, 0x65];
        cbor.extend_from_slice(b"video");
        cbor.extend_from_slice(&[0xA1, 0x67]);
        cbor.extend_from_slice(b"payload");
        cbor.extend_from_slice(&[0x5B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        let err = decode_all(frame_of(&cbor)).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::LimitExceeded {
                    what: "video.payload",
                    ..
                }
            ),
            "{err}"
        );
        // Below the payload limit but beyond the frame: refused on the frame's size.
        let mut cbor = cbor[..cbor.len() - 9].to_vec();
        cbor.extend_from_slice(&[0x5A, 0x00, 0x10, 0x00, 0x00]);
        let err = decode_all(frame_of(&cbor)).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut buf = BytesMut::new();
        encode(&Message::Camera { on: true }, &mut buf).unwrap();
        let mut cbor = buf[LENGTH_PREFIX_LEN..].to_vec();
        cbor.push(0x00);
        let err = decode_all(frame_of(&cbor)).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed { .. }), "{err}");
    }

    #[test]
    fn unknown_types_are_skipped_whole() {
        // ["wave", {"hand": "left"}]
        let mut cbor = vec![0x82, 0x64];
        cbor.extend_from_slice(b"wave");
        cbor.extend_from_slice(&[0xA1, 0x64]);
        cbor.extend_from_slice(b"hand");
        cbor.push(0x64);
        cbor.extend_from_slice(b"left");
        assert_eq!(
            decode_all(frame_of(&cbor)).unwrap(),
            Decoded::Unknown {
                kind: "wave".into()
            }
        );
    }
}
