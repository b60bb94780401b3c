//! Property-based round trips for every message type, checked against
//! ciborium as the reference CBOR implementation, plus the forward
//! compatibility rules (unknown fields, any key order) and chunked input.

mod protocol_support;

use bytes::{Bytes, BytesMut};
use ciborium::Value;
use proptest::prelude::*;
use protocol_support::{decode_one, encoded, value_frame};
use vchat::protocol::limits::{MAX_BYE_TEXT_LEN, MAX_HEIGHT, MAX_WIDTH};
use vchat::protocol::{
    decode_frame, encode_frame, Accept, Bye, ByeReason, Decoded, Hello, Message, PixelFormat,
    Receive, Video,
};

/// Printable text of at most 16 characters (so at most 64 UTF-8 bytes).
fn text() -> impl Strategy<Value = String> {
    "[^\\p{Cc}]{0,16}"
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        1..=u32::MAX,
        text(),
        text(),
        text(),
        prop::sample::subsequence(PixelFormat::ALL.to_vec(), 0..=3).prop_shuffle(),
        1..=MAX_WIDTH,
        1..=MAX_HEIGHT,
    )
        .prop_map(
            |(
                version,
                software_name,
                software_version,
                display_name,
                codecs,
                max_width,
                max_height,
            )| Hello {
                version,
                software_name,
                software_version,
                display_name,
                receive: Receive {
                    codecs,
                    max_width,
                    max_height,
                    audio: vec![],
                },
            },
        )
}

fn video() -> impl Strategy<Value = Video> {
    let raw = (
        1..=48u32,
        1..=48u32,
        prop::sample::select(vec![PixelFormat::Rgb24, PixelFormat::I420]),
    )
        .prop_flat_map(|(w, h, format)| {
            let len = format.raw_len(w, h).unwrap_or(0);
            (
                Just(w),
                Just(h),
                Just(format),
                prop::collection::vec(any::<u8>(), len),
            )
        });
    let jpeg = (
        1..=MAX_WIDTH,
        1..=MAX_HEIGHT,
        Just(PixelFormat::Jpeg),
        prop::collection::vec(any::<u8>(), 1..600),
    );
    (any::<u64>(), any::<u64>(), prop_oneof![raw, jpeg]).prop_map(
        |(seq, capture_time_us, (width, height, format, payload))| Video {
            seq,
            capture_time_us,
            width,
            height,
            format,
            payload: Bytes::from(payload),
            total_len: None,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello().prop_map(Message::Hello),
        (1..=u32::MAX).prop_map(|version| Message::Accept(Accept { version })),
        video().prop_map(Message::Video),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<(u64, Option<u64>)>().prop_map(|(nonce, time_us)| Message::Pong { nonce, time_us }),
        any::<bool>().prop_map(|on| Message::Camera { on }),
        (
            prop::sample::select(ByeReason::ALL.to_vec()),
            "[^\\p{Cc}]{0,64}"
        )
            .prop_map(|(reason, text)| Message::Bye(Bye::new(reason, text))),
    ]
}

/// Any CBOR value an unknown field might hold (no floats: NaN != NaN).
fn unknown_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        ".{0,8}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}".prop_map(Value::Text), inner.clone()), 0..4)
                .prop_map(Value::Map),
            (0..1000u64, inner).prop_map(|(tag, v)| Value::Tag(tag, Box::new(v))),
        ]
    })
}

/// Parses a frame with ciborium: the frame is standard CBOR.
fn reference_parse(frame: &[u8]) -> Value {
    let (prefix, cbor) = frame.split_at(4);
    assert_eq!(
        u32::from_be_bytes(prefix.try_into().unwrap()) as usize,
        cbor.len()
    );
    let mut reader = cbor;
    let value: Value = ciborium::from_reader(&mut reader).expect("ciborium reads our CBOR");
    assert!(reader.is_empty(), "exactly one item");
    value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_message_round_trips(message in message()) {
        let frame = encoded(&message);
        prop_assert_eq!(decode_one(frame.clone()).unwrap(), Decoded::Message(message.clone()));

        // The two-part encoding is the same bytes.
        let parts = encode_frame(&message).unwrap();
        prop_assert_eq!([&parts.head[..], &parts.payload[..]].concat(), frame.to_vec());

        // ciborium agrees on the structure, and payloads are byte strings.
        let Value::Array(items) = reference_parse(&frame) else { panic!("not an array") };
        prop_assert_eq!(items.len(), 2);
        prop_assert_eq!(&items[0], &Value::Text(message.kind().into()));
        let Value::Map(body) = &items[1] else { panic!("body is not a map") };
        if let Message::Video(video) = &message {
            let payload = body.iter().find(|(k, _)| k == &Value::from("payload")).map(|(_, v)| v);
            prop_assert_eq!(payload, Some(&Value::Bytes(video.payload.to_vec())));
        }
    }

    #[test]
    fn unknown_fields_and_key_order_do_not_matter(
        message in message(),
        extra in prop::collection::vec(("x_[a-z]{1,8}", unknown_value()), 0..4),
        seed in any::<u64>(),
    ) {
        let Value::Array(mut items) = reference_parse(&encoded(&message)) else { panic!() };
        let Value::Map(mut body) = items.pop().unwrap() else { panic!() };
        let mut keys_seen = std::collections::HashSet::new();
        for (key, value) in extra {
            if keys_seen.insert(key.clone()) {
                body.push((Value::Text(key), value));
            }
        }
        // A deterministic shuffle of the entries.
        let mut state = seed | 1;
        for i in (1..body.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            body.swap(i, (state % (i as u64 + 1)) as usize);
        }
        items.push(Value::Map(body));
        let reencoded = value_frame(&Value::Array(items));
        prop_assert_eq!(decode_one(reencoded).unwrap(), Decoded::Message(message));
    }

    #[test]
    fn frames_fed_in_any_chunks_decode_the_same(
        messages in prop::collection::vec(message(), 1..5),
        cuts in prop::collection::vec(1..64usize, 1..50),
    ) {
        let mut wire = BytesMut::new();
        for m in &messages {
            wire.extend_from_slice(&encoded(m));
        }
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut cuts = cuts.into_iter().cycle();
        while !wire.is_empty() {
            let n = cuts.next().unwrap().min(wire.len());
            buf.extend_from_slice(&wire.split_to(n));
            while let Some(Decoded::Message(m)) = decode_frame(&mut buf).unwrap() {
                decoded.push(m);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decode_frame(&mut buf) {}
    }

    #[test]
    fn unknown_codec_names_are_dropped(name in "[a-z0-9]{1,12}") {
        prop_assume!(PixelFormat::from_wire_name(&name).is_none());
        let hello = Value::Array(vec![
            "hello".into(),
            protocol_support::map(vec![
                ("version", 2.into()),
                ("software", "other".into()),
                ("software_version", "9".into()),
                ("name", "Bo".into()),
                ("receive", protocol_support::map(vec![
                    ("codecs", Value::Array(vec![name.as_str().into(), "jpeg".into()])),
                    ("max_width", 7680.into()),
                    ("max_height", 4320.into()),
                ])),
            ]),
        ]);
        let Decoded::Message(Message::Hello(decoded)) = decode_one(value_frame(&hello)).unwrap() else { panic!() };
        prop_assert_eq!(decoded.receive, Receive { codecs: vec![PixelFormat::Jpeg], max_width: MAX_WIDTH, max_height: MAX_HEIGHT, audio: vec![] });
    }
}

#[test]
fn longest_allowed_strings_round_trip() {
    let message = Message::Bye(Bye::new(
        ByeReason::ProtocolError,
        "é".repeat(MAX_BYE_TEXT_LEN / 2),
    ));
    assert_eq!(
        decode_one(encoded(&message)).unwrap(),
        Decoded::Message(message)
    );
}

#[test]
fn largest_frame_round_trips() {
    let message = Message::Video(protocol_support::raw_video(
        1,
        MAX_WIDTH,
        MAX_HEIGHT,
        PixelFormat::Rgb24,
    ));
    let frame = encoded(&message);
    // The head (prefix, type, small fields, payload head) is well under the slack.
    let head = frame.len() - vchat::protocol::limits::MAX_PAYLOAD_LEN;
    assert!(head < 100, "head of {head} bytes");
    assert_eq!(decode_one(frame).unwrap(), Decoded::Message(message));
}
