//! Unknown fields and unknown message types are checked like known ones
//! (PROTOCOL.md section 4): nesting counted in containers, valid UTF-8, text
//! map keys of at most `MAX_IDENT_LEN` bytes, at most `MAX_MAP_ENTRIES`
//! entries per map, definite lengths, declared lengths within the bytes left,
//! well-formed simple values. Each rule is tested at its limit and one past,
//! in a known message's unknown field and in an unknown message type's body.

mod protocol_support;

use bytes::BytesMut;
use protocol_support::{decode_one, encoded, frame};
use vchat::protocol::limits::{MAX_IDENT_LEN, MAX_MAP_ENTRIES, MAX_NESTING};
use vchat::protocol::{ByeReason, Decoded, Message, ProtocolError};

/// Nesting level of a body's field values: the message array is 1, the body
/// map 2, so a container held directly by a field is level 3.
const FIELD_LEVEL: usize = 3;

/// A CBOR head with a short (at most 23) or one-byte argument.
fn head(major: u8, arg: usize) -> Vec<u8> {
    match arg {
        0..=23 => vec![(major << 5) | arg as u8],
        24..=255 => vec![(major << 5) | 24, arg as u8],
        _ => {
            let mut h = vec![(major << 5) | 25];
            h.extend_from_slice(&(arg as u16).to_be_bytes());
            h
        }
    }
}

fn text(s: &[u8]) -> Vec<u8> {
    let mut out = head(3, s.len());
    out.extend_from_slice(s);
    out
}

/// Where an arbitrary CBOR item is placed for a test.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// `["ping", {"nonce": 1, "x": item}]`: an unknown field of a known message.
    KnownMessage,
    /// `["wave", {"x": item}]`: a field of an unknown message type.
    UnknownType,
}

const PLACES: [Place; 2] = [Place::KnownMessage, Place::UnknownType];

/// One frame holding `item` as the value of the field `x`.
fn with_item(place: Place, item: &[u8]) -> BytesMut {
    let mut cbor = vec![0x82];
    match place {
        Place::KnownMessage => {
            cbor.extend(text(b"ping"));
            cbor.push(0xA2);
            cbor.extend(text(b"nonce"));
            cbor.push(0x01);
        }
        Place::UnknownType => {
            cbor.extend(text(b"wave"));
            cbor.push(0xA1);
        }
    }
    cbor.extend(text(b"x"));
    cbor.extend_from_slice(item);
    frame(&cbor)
}

fn accept(place: Place, item: &[u8]) {
    let expected = match place {
        Place::KnownMessage => Decoded::Message(Message::Ping { nonce: 1 }),
        Place::UnknownType => Decoded::Unknown {
            kind: "wave".into(),
        },
    };
    match decode_one(with_item(place, item)) {
        Ok(decoded) => assert_eq!(decoded, expected, "{place:?}"),
        Err(e) => panic!("{place:?}: refused {item:02x?}: {e}"),
    }
}

fn refuse(place: Place, item: &[u8]) -> ProtocolError {
    let err = match decode_one(with_item(place, item)) {
        Err(e) => e,
        Ok(decoded) => panic!("{place:?}: accepted {item:02x?} as {decoded:?}"),
    };
    // The Bye naming the problem is itself a valid message.
    let bye = err.bye();
    assert_eq!(bye.reason, ByeReason::ProtocolError, "{err}");
    let _ = encoded(&Message::Bye(bye));
    err
}

/// `n` containers of one kind nested around the integer 0.
fn nested(kind: Container, n: usize) -> Vec<u8> {
    let mut item = Vec::new();
    for _ in 0..n {
        match kind {
            Container::Array => item.push(0x81),
            Container::Map => {
                item.push(0xA1);
                item.extend(text(b"k"));
            }
            Container::Tag => item.push(0xC6),
        }
    }
    item.push(0x00);
    item
}

#[derive(Debug, Clone, Copy)]
enum Container {
    Array,
    Map,
    Tag,
}

fn assert_nesting_error(err: &ProtocolError, level: usize) {
    assert!(
        matches!(
            err,
            ProtocolError::LimitExceeded {
                what: "CBOR nesting depth",
                value,
                limit,
            } if *value == level as u64 && *limit == MAX_NESTING as u64
        ),
        "{err}"
    );
}

#[test]
fn a_scalar_inside_max_nesting_containers_is_allowed_and_one_more_container_is_not() {
    // The message array and the body map are levels 1 and 2; the field's
    // containers fill levels 3..=MAX_NESTING around a scalar.
    let fits = MAX_NESTING - (FIELD_LEVEL - 1);
    for kind in [Container::Array, Container::Map, Container::Tag] {
        for place in PLACES {
            accept(place, &nested(kind, fits));
            let err = refuse(place, &nested(kind, fits + 1));
            assert_nesting_error(&err, MAX_NESTING + 1);
        }
    }
    // Mixed containers count the same way.
    let mut mixed = Vec::new();
    for level in 0..fits {
        mixed.extend(nested(
            [Container::Array, Container::Map, Container::Tag][level % 3],
            1,
        ));
        mixed.pop(); // drop the scalar: only the container heads
    }
    mixed.push(0x00);
    for place in PLACES {
        accept(place, &mixed);
        let mut deeper = vec![0x81];
        deeper.extend_from_slice(&mixed);
        assert_nesting_error(&refuse(place, &deeper), MAX_NESTING + 1);
    }
}

#[test]
fn nesting_in_hello_receive_counts_the_receive_map() {
    // ["hello", {..., "receive": {"codecs": [], "max_width": 1,
    // "max_height": 1, "x": item}}]: the receive map is level 3, so an
    // unknown field's containers start at level 4.
    let hello_with = |item: &[u8]| {
        let mut cbor = vec![0x82];
        cbor.extend(text(b"hello"));
        cbor.push(0xA5);
        for (k, v) in [
            (&b"version"[..], vec![0x02]),
            (b"software", text(b"s")),
            (b"software_version", text(b"1")),
            (b"name", text(b"n")),
        ] {
            cbor.extend(text(k));
            cbor.extend(v);
        }
        cbor.extend(text(b"receive"));
        cbor.push(0xA4);
        cbor.extend(text(b"codecs"));
        cbor.push(0x80);
        cbor.extend(text(b"max_width"));
        cbor.push(0x01);
        cbor.extend(text(b"max_height"));
        cbor.push(0x01);
        cbor.extend(text(b"x"));
        cbor.extend_from_slice(item);
        frame(&cbor)
    };
    let fits = MAX_NESTING - FIELD_LEVEL;
    for kind in [Container::Array, Container::Map, Container::Tag] {
        assert!(
            matches!(
                decode_one(hello_with(&nested(kind, fits))),
                Ok(Decoded::Message(Message::Hello(_)))
            ),
            "{kind:?}"
        );
        let err = decode_one(hello_with(&nested(kind, fits + 1))).unwrap_err();
        assert_nesting_error(&err, MAX_NESTING + 1);
    }
}

#[test]
fn very_deep_nesting_is_refused_at_the_limit_without_recursing_further() {
    // 100,000 nested arrays would overflow the stack if the decoder followed
    // them; it stops at MAX_NESTING + 1.
    for place in PLACES {
        let err = refuse(place, &nested(Container::Array, 100_000));
        assert_nesting_error(&err, MAX_NESTING + 1);
        let err = refuse(place, &nested(Container::Tag, 100_000));
        assert_nesting_error(&err, MAX_NESTING + 1);
    }
}

#[test]
fn strings_in_unknown_fields_are_valid_utf8_definite_and_within_the_message() {
    for place in PLACES {
        // Valid UTF-8, including multi-byte characters and control
        // characters (unknown fields are never shown to people).
        accept(place, &text("é€😀\n".as_bytes()));
        accept(place, &text(b""));
        // Invalid UTF-8: a bad continuation, an overlong NUL, a surrogate,
        // a truncated sequence.
        for bad in [
            &[0xC3, 0x28][..],
            &[0xC0, 0x80],
            &[0xED, 0xA0, 0x80],
            &[0xE2, 0x82],
            &[0xFF],
        ] {
            let err = refuse(place, &text(bad));
            assert!(
                matches!(
                    &err,
                    ProtocolError::InvalidValue {
                        field: "text in an unknown field",
                        ..
                    }
                ),
                "{bad:02x?}: {err}"
            );
        }
        // Also inside an array, a map value and a tag.
        let mut in_array = vec![0x81];
        in_array.extend(text(&[0xC3, 0x28]));
        refuse(place, &in_array);
        let mut in_tag = vec![0xC0];
        in_tag.extend(text(&[0xC3, 0x28]));
        refuse(place, &in_tag);
        // Byte strings hold any bytes.
        accept(place, &[0x42, 0xC3, 0x28]);

        // Definite lengths only: indefinite text, bytes, array and map.
        for indefinite in [
            &[0x7F, 0x61, b'a', 0xFF][..],
            &[0x5F, 0x41, 0x00, 0xFF],
            &[0x9F, 0x00, 0xFF],
            &[0xBF, 0x61, b'a', 0x00, 0xFF],
        ] {
            let err = refuse(place, indefinite);
            assert!(err.to_string().contains("indefinite"), "{err}");
        }
    }
    // Declared lengths are checked against the bytes left.
    // The field is the last thing in the message, so "bytes left" is exactly
    // what follows the head.
    for place in PLACES {
        // A string whose declared length is exactly what is left, and one more.
        let mut exact = head(2, 5);
        exact.extend_from_slice(&[1, 2, 3, 4, 5]);
        accept(place, &exact);
        let mut over = head(2, 6);
        over.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert!(matches!(
            refuse(place, &over),
            ProtocolError::Malformed { .. }
        ));
        // Arrays: each element takes at least one byte.
        let mut array = head(4, 10);
        array.extend_from_slice(&[0; 10]);
        accept(place, &array);
        let mut array = head(4, 11);
        array.extend_from_slice(&[0; 10]);
        assert!(matches!(
            refuse(place, &array),
            ProtocolError::Malformed { .. }
        ));
        // A count of 2^64-1 is refused from the head alone (nothing reserved).
        let huge = [0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
        assert!(matches!(
            refuse(place, &huge),
            ProtocolError::Malformed { .. }
        ));
        let huge_text = [0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
        assert!(matches!(
            refuse(place, &huge_text),
            ProtocolError::Malformed { .. }
        ));
    }
}

#[test]
fn map_keys_in_unknown_fields_are_text_of_at_most_max_ident_len_bytes() {
    let map_with_key = |key: &[u8]| {
        let mut item = vec![0xA1];
        item.extend_from_slice(key);
        item.push(0x00);
        item
    };
    for place in PLACES {
        accept(place, &map_with_key(&text(&[b'k'; MAX_IDENT_LEN])));
        // Multi-byte characters count in bytes: 16 x "é" is 32 bytes.
        accept(
            place,
            &map_with_key(&text("é".repeat(MAX_IDENT_LEN / 2).as_bytes())),
        );
        let err = refuse(place, &map_with_key(&text(&[b'k'; MAX_IDENT_LEN + 1])));
        assert!(
            matches!(
                &err,
                ProtocolError::LimitExceeded { what: "map key in an unknown field", value, limit }
                    if *value == MAX_IDENT_LEN as u64 + 1 && *limit == MAX_IDENT_LEN as u64
            ),
            "{err}"
        );
        // Keys of any other type: integer, byte string, array, null.
        for key in [&[0x01][..], &[0x41, b'k'], &[0x80], &[0xF6]] {
            let err = refuse(place, &map_with_key(key));
            assert!(matches!(&err, ProtocolError::WrongType { .. }), "{err}");
        }
        // A key with invalid UTF-8.
        refuse(place, &map_with_key(&text(&[0xC3, 0x28])));
    }
    // The body map of an unknown type follows the same key rule.
    let mut cbor = vec![0x82];
    cbor.extend(text(b"wave"));
    cbor.push(0xA1);
    cbor.extend(text(&[b'k'; MAX_IDENT_LEN + 1]));
    cbor.push(0x00);
    assert!(matches!(
        decode_one(frame(&cbor)),
        Err(ProtocolError::LimitExceeded { .. })
    ));
}

#[test]
fn maps_in_unknown_fields_hold_at_most_max_map_entries() {
    let map_of = |entries: usize| {
        let mut item = head(5, entries);
        for i in 0..entries {
            item.extend(text(format!("k{i}").as_bytes()));
            item.push(0x00);
        }
        item
    };
    for place in PLACES {
        accept(place, &map_of(MAX_MAP_ENTRIES));
        let err = refuse(place, &map_of(MAX_MAP_ENTRIES + 1));
        assert!(
            matches!(
                &err,
                ProtocolError::LimitExceeded { what: "map in an unknown field", value, limit }
                    if *value == MAX_MAP_ENTRIES as u64 + 1 && *limit == MAX_MAP_ENTRIES as u64
            ),
            "{err}"
        );
        // Duplicate keys inside an unknown field are not an error.
        let mut dup = vec![0xA2];
        dup.extend(text(b"a"));
        dup.push(0x00);
        dup.extend(text(b"a"));
        dup.push(0x01);
        accept(place, &dup);
    }
    // An unknown type's body: MAX_MAP_ENTRIES entries, and one more.
    let body = |entries: usize| {
        let mut cbor = vec![0x82];
        cbor.extend(text(b"wave"));
        cbor.extend(map_of(entries));
        frame(&cbor)
    };
    assert!(decode_one(body(MAX_MAP_ENTRIES)).is_ok());
    assert!(matches!(
        decode_one(body(MAX_MAP_ENTRIES + 1)),
        Err(ProtocolError::LimitExceeded { .. })
    ));
}

#[test]
fn other_well_formed_items_are_skipped_and_malformed_ones_refused() {
    for place in PLACES {
        // Negative integers, floats of each width, null, undefined, a
        // two-byte simple value (32 and up), tags around anything.
        for ok in [
            &[0x20][..],
            &[0x3B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0xF9, 0x3C, 0x00],
            &[0xFA, 0x3F, 0x80, 0x00, 0x00],
            &[0xFB, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0],
            &[0xF6],
            &[0xF7],
            &[0xF0],
            &[0xF8, 0x20],
            &[0xF8, 0xFF],
            &[0xC2, 0x41, 0x01],
            &[0xDB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00],
        ] {
            accept(place, ok);
        }
        // RFC 8949 3.3: a simple value below 32 has only the one-byte form.
        for bad in [&[0xF8, 0x00][..], &[0xF8, 0x14], &[0xF8, 0x1F]] {
            let err = refuse(place, bad);
            assert!(err.to_string().contains("simple value"), "{err}");
        }
        // Reserved additional information (28..30) and a lone break.
        for bad in [&[0x1C][..], &[0xFC], &[0xFF], &[0xDF, 0x00]] {
            assert!(matches!(
                refuse(place, bad),
                ProtocolError::Malformed { .. }
            ));
        }
    }
}

#[test]
fn a_two_byte_false_is_refused_in_a_known_field_too() {
    // ["camera", {"on": 0xf8 0x14}]: not well-formed, so not `false`.
    let mut cbor = vec![0x82];
    cbor.extend(text(b"camera"));
    cbor.push(0xA1);
    cbor.extend(text(b"on"));
    cbor.extend_from_slice(&[0xF8, 0x14]);
    let err = decode_one(frame(&cbor)).unwrap_err();
    assert!(err.to_string().contains("simple value"), "{err}");
    // The one-byte form is `false`.
    let mut cbor = cbor[..cbor.len() - 2].to_vec();
    cbor.push(0xF4);
    assert_eq!(
        decode_one(frame(&cbor)).unwrap(),
        Decoded::Message(Message::Camera { on: false })
    );
}
