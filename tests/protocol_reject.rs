//! Hostile and broken input: every case must end in a `ProtocolError` (which
//! becomes the Bye naming the problem), never a panic, and never an
//! allocation driven by a declared length.

mod protocol_support;

use bytes::BytesMut;
use ciborium::Value;
use protocol_support::{decode_one, encoded, frame, map, message_value, value_frame};
use vchat::protocol::limits::{MAX_DISPLAY_NAME_LEN, MAX_MESSAGE_LEN, MAX_NESTING};
use vchat::protocol::{decode_frame, ByeReason, Decoded, Message, PixelFormat, ProtocolError};

fn video_body(width: u64, height: u64, format: &str, payload: Vec<u8>) -> Value {
    map(vec![
        ("seq", 1.into()),
        ("time_us", 0.into()),
        ("width", width.into()),
        ("height", height.into()),
        ("format", format.into()),
        ("payload", Value::Bytes(payload)),
    ])
}

fn reject(buf: BytesMut) -> ProtocolError {
    let err = match decode_one(buf) {
        Err(e) => e,
        Ok(decoded) => panic!("accepted: {decoded:?}"),
    };
    // Whatever the problem, the Bye naming it is a valid message.
    let bye = err.bye();
    assert_eq!(bye.reason, ByeReason::ProtocolError, "{err}");
    let _ = encoded(&Message::Bye(bye));
    err
}

#[test]
fn truncated_frames_wait_for_more_and_never_decode() {
    for message in protocol_support::examples() {
        let full = encoded(&message);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode_frame(&mut part).unwrap(), None);
        }
    }
}

#[test]
fn length_prefix_of_all_ones_is_refused_from_the_prefix_alone() {
    let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
    let capacity = buf.capacity();
    let err = decode_frame(&mut buf).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("message of 4294967295 bytes exceeds the limit of {MAX_MESSAGE_LEN} bytes")
    );
    assert_eq!(buf.capacity(), capacity, "no buffer was reserved");
}

#[test]
fn zero_length_prefix_is_refused() {
    assert!(matches!(reject(frame(&[])), ProtocolError::EmptyMessage));
}

#[test]
fn garbage_is_refused() {
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xFF],                   // a lone break
        &[0x1C],                   // reserved additional information
        &[0x82, 0x64, b'p', b'i'], // text running past the end
        &[0x00],                   // an integer, not a message
        &[0x83, 0x00, 0x00, 0x00], // a 3-element array
        &[0x9F, 0xFF],             // indefinite-length array
    ] {
        reject(frame(garbage));
    }
}

#[test]
fn deeply_nested_cbor_is_refused_without_recursing_deeply() {
    // An unknown field holding 10,000 nested arrays: refused at MAX_NESTING.
    let mut cbor = vec![0x82, 0x64];
    cbor.extend_from_slice(b"ping");
    cbor.extend_from_slice(&[0xA2, 0x65]);
    cbor.extend_from_slice(b"nonce");
    cbor.push(0x01);
    cbor.extend_from_slice(&[0x61, b'x']);
    cbor.extend(std::iter::repeat_n(0x81, 10_000));
    cbor.push(0x00);
    let err = reject(frame(&cbor));
    assert!(
        err.to_string()
            .contains(&format!("CBOR nesting depth is {}", MAX_NESTING + 1)),
        "{err}"
    );

    // The limit itself, and maps and tags: tests/protocol_unknown_fields.rs.
}

#[test]
fn huge_declared_lengths_are_refused_in_a_small_frame() {
    let prefix = |kind: &str| {
        let mut cbor = vec![0x82, 0x60 | kind.len() as u8];
        cbor.extend_from_slice(kind.as_bytes());
        cbor
    };
    // Declared element counts of 2^64-1 / 2^32-1, for known and unknown places.
    for tail in [
        &[0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..], // body: array(2^64-1)
        &[0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],     // body: map(2^64-1)
        &[0xBA, 0xFF, 0xFF, 0xFF, 0xFF],                             // body: map(2^32-1)
        &[0xB8, 0x20], // body: map(32), nothing follows
    ] {
        for kind in ["ping", "video", "future"] {
            let mut cbor = prefix(kind);
            cbor.extend_from_slice(tail);
            reject(frame(&cbor));
        }
    }
    // A text key declaring 2^64-1 bytes; a string value declaring 2^32-1 bytes.
    let mut cbor = prefix("hello");
    cbor.extend_from_slice(&[0xA1, 0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    reject(frame(&cbor));
    let mut cbor = prefix("wave");
    cbor.extend_from_slice(&[0xA1, 0x61, b'x', 0x7A, 0xFF, 0xFF, 0xFF, 0xFF]);
    reject(frame(&cbor));
    // A codec list declaring a million entries.
    let mut cbor = prefix("hello");
    cbor.extend_from_slice(&[0xA1, 0x67]);
    cbor.extend_from_slice(b"receive");
    cbor.extend_from_slice(&[0xA1, 0x66]);
    cbor.extend_from_slice(b"codecs");
    cbor.extend_from_slice(&[0x9A, 0x00, 0x0F, 0x42, 0x40]);
    let err = reject(frame(&cbor));
    assert!(matches!(err, ProtocolError::LimitExceeded { .. }), "{err}");
}

#[test]
fn wrong_field_types_are_refused() {
    let cases = [
        message_value("ping", map(vec![("nonce", "seven".into())])),
        message_value("camera", map(vec![("on", 1.into())])),
        message_value("accept", map(vec![("version", Value::Float(1.0))])),
        message_value(
            "video",
            video_body(2, 2, "rgb24", vec![0; 12]).into_map_with("width", "2".into()),
        ),
        message_value(
            "video",
            video_body(2, 2, "rgb24", vec![0; 12])
                .into_map_with("payload", Value::Array(vec![0.into(); 12])),
        ),
        message_value("bye", map(vec![("reason", 1.into()), ("text", "".into())])),
        message_value("ping", Value::Array(vec![])),
        Value::Array(vec![1.into(), map(vec![])]),
        Value::Map(vec![]),
    ];
    for case in cases {
        let err = reject(value_frame(&case));
        assert!(
            matches!(
                err,
                ProtocolError::WrongType { .. } | ProtocolError::Malformed { .. }
            ),
            "{case:?}: {err}"
        );
    }
    // Non-text map keys.
    let err = reject(value_frame(&message_value(
        "ping",
        Value::Map(vec![(1.into(), 2.into())]),
    )));
    assert!(
        matches!(
            err,
            ProtocolError::WrongType {
                field: "map key",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn negative_and_overflowing_numbers_are_refused() {
    let negative = message_value("ping", map(vec![("nonce", (-1).into())]));
    let err = reject(value_frame(&negative));
    assert_eq!(
        err.to_string(),
        "ping.nonce must be an unsigned integer, found a negative integer"
    );

    let big = Value::Integer(u64::MAX.into());
    for case in [
        message_value(
            "video",
            video_body(2, 2, "rgb24", vec![0; 12]).into_map_with("width", big.clone()),
        ),
        message_value(
            "video",
            video_body(2, 2, "rgb24", vec![0; 12]).into_map_with("height", (1u64 << 32).into()),
        ),
        message_value("accept", map(vec![("version", (1u64 << 32).into())])),
    ] {
        assert!(matches!(
            reject(value_frame(&case)),
            ProtocolError::LimitExceeded { .. }
        ));
    }
    // A bignum (tag 2) is not an unsigned integer.
    let bignum = Value::Tag(2, Box::new(Value::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0])));
    let err = reject(value_frame(&message_value(
        "ping",
        map(vec![("nonce", bignum)]),
    )));
    assert!(
        matches!(err, ProtocolError::WrongType { found: "a tag", .. }),
        "{err}"
    );
    // Version 0 does not exist.
    let err = reject(value_frame(&message_value(
        "accept",
        map(vec![("version", 0.into())]),
    )));
    assert!(
        matches!(
            err,
            ProtocolError::InvalidValue {
                field: "accept.version",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn payloads_that_do_not_match_their_dimensions_are_refused() {
    let err = reject(value_frame(&message_value(
        "video",
        video_body(640, 480, "rgb24", vec![0; 1000]),
    )));
    assert_eq!(
        err.to_string(),
        "video frame 640x480 rgb24 declares 1000 payload bytes, expected 921600"
    );
    let err = reject(value_frame(&message_value(
        "video",
        video_body(3, 3, "i420", vec![0; 13]),
    )));
    assert!(
        matches!(
            err,
            ProtocolError::PayloadMismatch {
                expected: 17,
                actual: 13,
                ..
            }
        ),
        "{err}"
    );
    let err = reject(value_frame(&message_value(
        "video",
        video_body(3, 3, "jpeg", vec![]),
    )));
    assert!(matches!(err, ProtocolError::InvalidValue { .. }), "{err}");
    for (w, h) in [(0, 2), (2, 0), (3841, 1), (1, 2161)] {
        let len = (w * h * 3) as usize;
        reject(value_frame(&message_value(
            "video",
            video_body(w, h, "rgb24", vec![0; len]),
        )));
    }
    let err = reject(value_frame(&message_value(
        "video",
        video_body(2, 2, "vp8", vec![0; 12]),
    )));
    assert_eq!(
        err.to_string(),
        "video.format is invalid: unknown pixel format \"vp8\""
    );
}

#[test]
fn missing_duplicate_and_oversized_fields_are_refused() {
    let err = reject(value_frame(&message_value("ping", map(vec![]))));
    assert_eq!(
        err.to_string(),
        "ping message lacks the required field \"nonce\""
    );
    let err = reject(value_frame(&message_value(
        "ping",
        map(vec![("nonce", 1.into()), ("nonce", 2.into())]),
    )));
    assert!(matches!(err, ProtocolError::DuplicateField { .. }), "{err}");
    // A hello whose display name is one byte over the limit.
    let body = map(vec![
        ("version", 1.into()),
        ("software", "vchat".into()),
        ("software_version", "1".into()),
        ("name", "n".repeat(MAX_DISPLAY_NAME_LEN + 1).into()),
        (
            "receive",
            map(vec![
                ("codecs", Value::Array(vec![])),
                ("max_width", 1.into()),
                ("max_height", 1.into()),
            ]),
        ),
    ]);
    let err = reject(value_frame(&message_value("hello", body.clone())));
    assert!(
        matches!(
            err,
            ProtocolError::LimitExceeded {
                what: "hello.name",
                ..
            }
        ),
        "{err}"
    );
    // Control characters in shown text (terminal escapes) are refused.
    let body = body.into_map_with("name", "\u{1b}[31mEve".into());
    let err = reject(value_frame(&message_value("hello", body)));
    assert!(
        matches!(
            err,
            ProtocolError::InvalidValue {
                field: "hello.name",
                ..
            }
        ),
        "{err}"
    );
    // Invalid UTF-8 in a text string.
    let mut cbor = vec![0x82, 0x63];
    cbor.extend_from_slice(b"bye");
    cbor.extend_from_slice(&[0xA2, 0x66]);
    cbor.extend_from_slice(b"reason");
    cbor.extend_from_slice(&[0x66]);
    cbor.extend_from_slice(b"hangup");
    cbor.extend_from_slice(&[0x64]);
    cbor.extend_from_slice(b"text");
    cbor.extend_from_slice(&[0x62, 0xC3, 0x28]);
    let err = reject(frame(&cbor));
    assert!(err.to_string().contains("invalid UTF-8"), "{err}");
}

#[test]
fn trailing_bytes_after_the_item_are_refused() {
    let mut cbor = encoded(&Message::Ping { nonce: 3 })[4..].to_vec();
    cbor.extend_from_slice(&[0x82, 0x00]);
    reject(frame(&cbor));
}

#[test]
fn indefinite_lengths_are_refused() {
    // ["ping", {_ "nonce": 1}]
    let mut cbor = vec![0x82, 0x64];
    cbor.extend_from_slice(b"ping");
    cbor.extend_from_slice(&[0xBF, 0x65]);
    cbor.extend_from_slice(b"nonce");
    cbor.extend_from_slice(&[0x01, 0xFF]);
    let err = reject(frame(&cbor));
    assert!(err.to_string().contains("indefinite"), "{err}");
}

#[test]
fn raw_frames_of_every_format_check_their_length() {
    for format in [PixelFormat::Rgb24, PixelFormat::I420] {
        let len = format.raw_len(5, 3).unwrap();
        let ok = message_value("video", video_body(5, 3, format.name(), vec![7; len]));
        assert!(matches!(
            decode_one(value_frame(&ok)),
            Ok(Decoded::Message(Message::Video(_)))
        ));
        for wrong in [len - 1, len + 1] {
            reject(value_frame(&message_value(
                "video",
                video_body(5, 3, format.name(), vec![7; wrong]),
            )));
        }
    }
}

/// Replaces one entry of a text-keyed map.
trait IntoMapWith {
    fn into_map_with(self, key: &str, value: Value) -> Value;
}

impl IntoMapWith for Value {
    fn into_map_with(self, key: &str, value: Value) -> Value {
        let Value::Map(entries) = self else {
            panic!("not a map")
        };
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    if k == Value::from(key) {
                        (k, value.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
        )
    }
}
