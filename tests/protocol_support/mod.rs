//! Helpers shared by the `protocol_*` integration tests: example messages,
//! raw frame builders and the annotated hex dump used in PROTOCOL.md.
#![allow(dead_code)] // each test file uses a different subset

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use ciborium_ll::{Decoder, Header};
use vchat::protocol::{
    decode_frame, encode, Accept, Audio, AudioFormat, Bye, ByeReason, Decoded, Hello, Message,
    PixelFormat, ProtocolError, Receive, Video, VideoPart, PROTOCOL_VERSION,
};

/// A typical Hello.
pub fn hello(name: &str) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        software_name: "vchat".into(),
        software_version: "0.1.0".into(),
        display_name: name.into(),
        receive: Receive {
            codecs: PixelFormat::ALL.to_vec(),
            max_width: 1920,
            max_height: 1080,
            audio: vec![AudioFormat::Opus],
        },
    }
}

/// A raw frame filled with a recognisable pattern.
pub fn raw_video(seq: u64, width: u32, height: u32, format: PixelFormat) -> Video {
    let len = format.raw_len(width, height).expect("a raw format");
    Video {
        seq,
        capture_time_us: seq * 33_333,
        width,
        height,
        format,
        payload: Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
        total_len: None,
    }
}

/// One example of each message, as shown in PROTOCOL.md.
pub fn examples() -> Vec<Message> {
    vec![
        Message::Hello(hello("Ada")),
        Message::Accept(Accept {
            version: PROTOCOL_VERSION,
        }),
        Message::Video(Video {
            seq: 1,
            capture_time_us: 1_700_000,
            width: 2,
            height: 2,
            format: PixelFormat::Rgb24,
            // red, green / blue, white
            payload: Bytes::from_static(&[0xFF, 0, 0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]),
            total_len: None,
        }),
        Message::Ping { nonce: 1_234_567 },
        Message::Pong {
            nonce: 1_234_567,
            time_us: Some(1_750_000),
        },
        Message::VideoPart(VideoPart {
            seq: 2,
            payload: Bytes::from_static(&[0x00, 0x00, 0x00, 0x01, 0x41, 0x9a]),
        }),
        Message::Audio(Audio {
            seq: 1,
            capture_time_us: 1_700_000,
            format: AudioFormat::Opus,
            // A 20 ms SILK wideband frame's TOC byte, then its bytes.
            payload: Bytes::from_static(&[0x48, 0x0b, 0xe4, 0xc1, 0x36]),
        }),
        Message::Camera { on: false },
        Message::Microphone { on: false },
        Message::Keyframe,
        Message::Bye(Bye::new(ByeReason::Hangup, "Ada hung up")),
    ]
}

/// The frame (prefix included) of a message.
pub fn encoded(message: &Message) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(message, &mut buf).expect("encodes");
    buf
}

/// A frame around arbitrary CBOR bytes.
pub fn frame(cbor: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(cbor.len() + 4);
    buf.put_u32(cbor.len() as u32);
    buf.extend_from_slice(cbor);
    buf
}

/// A frame around a CBOR value written by ciborium (the reference encoder).
pub fn value_frame(value: &ciborium::Value) -> BytesMut {
    let mut cbor = Vec::new();
    ciborium::into_writer(value, &mut cbor).expect("ciborium encodes");
    frame(&cbor)
}

/// A text-keyed CBOR map.
pub fn map(entries: Vec<(&str, ciborium::Value)>) -> ciborium::Value {
    ciborium::Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// The message `[kind, body]`.
pub fn message_value(kind: &str, body: ciborium::Value) -> ciborium::Value {
    ciborium::Value::Array(vec![kind.into(), body])
}

/// Decodes exactly one complete frame.
pub fn decode_one(mut buf: BytesMut) -> Result<Decoded, ProtocolError> {
    match decode_frame(&mut buf)? {
        Some(decoded) => {
            assert!(buf.is_empty(), "the frame was not consumed whole");
            Ok(decoded)
        }
        None => panic!("incomplete frame: {} bytes", buf.len()),
    }
}

/// Renders a frame as an annotated hex dump: one CBOR item per line,
/// indented by nesting, with its meaning after `#`.
pub fn annotate(frame: &[u8]) -> String {
    let mut out = String::new();
    let (prefix, cbor) = frame.split_at(4);
    line(
        &mut out,
        0,
        prefix,
        &format!(
            "length prefix: {} bytes of CBOR follow",
            u32::from_be_bytes(prefix.try_into().unwrap())
        ),
    );
    let mut pos = 0;
    item(&mut out, cbor, &mut pos, 0, None);
    assert_eq!(pos, cbor.len(), "annotated the whole frame");
    out
}

fn item(out: &mut String, cbor: &[u8], pos: &mut usize, depth: usize, role: Option<&str>) {
    let mut decoder = Decoder::from(&cbor[*pos..]);
    let header = decoder.pull().expect("valid CBOR");
    let head_len = decoder.offset();
    let head = &cbor[*pos..*pos + head_len];
    *pos += head_len;
    let role = role.map(|r| format!("{r}: ")).unwrap_or_default();
    match header {
        Header::Positive(n) => line(out, depth, head, &format!("{role}unsigned {n}")),
        Header::Simple(20) => line(out, depth, head, &format!("{role}false")),
        Header::Simple(21) => line(out, depth, head, &format!("{role}true")),
        Header::Text(Some(len)) => {
            let body = &cbor[*pos..*pos + len];
            *pos += len;
            let text = std::str::from_utf8(body).expect("utf-8");
            line(
                out,
                depth,
                &[head, body].concat(),
                &format!("{role}text({len}) {text:?}"),
            );
        }
        Header::Bytes(Some(len)) => {
            line(
                out,
                depth,
                head,
                &format!("{role}bytes({len}), the payload:"),
            );
            for chunk in cbor[*pos..*pos + len].chunks(12) {
                line(out, depth + 1, chunk, "");
            }
            *pos += len;
        }
        Header::Array(Some(len)) => {
            let what = if depth == 0 {
                "message = [type, body]"
            } else {
                ""
            };
            line(out, depth, head, &format!("{role}array({len}) {what}"));
            for _ in 0..len {
                item(out, cbor, pos, depth + 1, None);
            }
        }
        Header::Map(Some(len)) => {
            line(out, depth, head, &format!("{role}map({len})"));
            for _ in 0..len {
                let mut key_decoder = Decoder::from(&cbor[*pos..]);
                let Ok(Header::Text(Some(klen))) = key_decoder.pull() else {
                    panic!("text keys")
                };
                let start = *pos + key_decoder.offset();
                let key = std::str::from_utf8(&cbor[start..start + klen])
                    .unwrap()
                    .to_owned();
                item(out, cbor, pos, depth + 1, Some("key"));
                item(out, cbor, pos, depth + 1, Some(&key));
            }
        }
        other => panic!("not used by vchat: {other:?}"),
    }
}

fn line(out: &mut String, depth: usize, bytes: &[u8], comment: &str) {
    let mut hex = "  ".repeat(depth);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            hex.push(' ');
        }
        let _ = write!(hex, "{b:02x}");
    }
    let comment = comment.trim_end();
    if comment.is_empty() {
        let _ = writeln!(out, "{hex}");
    } else if hex.len() < 40 {
        let _ = writeln!(out, "{hex:<40}# {comment}");
    } else {
        let _ = writeln!(out, "{hex}\n{:<40}# {comment}", "");
    }
}
