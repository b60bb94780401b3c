//! Keeps PROTOCOL.md honest: its annotated hex dumps and its limits table
//! are rendered here from the code and must match the file byte for byte.
//!
//! After a deliberate change, rewrite the generated sections with
//! `VCHAT_UPDATE_PROTOCOL_MD=1 cargo test --test protocol_spec`.
//! `VCHAT_WRITE_FUZZ_SEEDS=1` also writes the examples as fuzz seeds.

mod protocol_support;

use std::path::{Path, PathBuf};

use protocol_support::{annotate, decode_one, encoded, examples, hello, raw_video};
use vchat::protocol::datagram::{
    decode_audio_body, encode_audio_body, open, seal, DatagramKeys, ReplayWindow,
    DATAGRAM_KEYING_LEN, MAX_AUDIO_PER_DATAGRAM, MAX_DATAGRAM_LEN,
};
use vchat::protocol::limits::*;
use vchat::protocol::{
    Accept, Audio, AudioFormat, Bye, ByeReason, Decoded, Message, PixelFormat, PROTOCOL_VERSION,
};

fn protocol_md() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("PROTOCOL.md")
}

fn render_examples() -> String {
    let mut out = String::new();
    for message in examples() {
        let frame = encoded(&message);
        // What we document must be what we decode.
        assert_eq!(
            decode_one(frame.clone()).unwrap(),
            Decoded::Message(message.clone())
        );
        out.push_str(&format!(
            "#### {} ({} bytes)\n\n```text\n{}```\n\n",
            message.kind(),
            frame.len(),
            annotate(&frame)
        ));
    }
    out
}

/// Section 2.5's test vector: keying material 00..3f, the caller's first
/// datagram carrying one `audio` message; opened again with the
/// listener's key before it is written down.
fn render_datagram_vector() -> String {
    let material: [u8; DATAGRAM_KEYING_LEN] = std::array::from_fn(|i| i as u8);
    let caller = DatagramKeys::from_keying_material(&material, true);
    let listener = DatagramKeys::from_keying_material(&material, false);
    let audio = Audio {
        seq: 0,
        capture_time_us: 1_767_225_600_000_000,
        format: AudioFormat::Opus,
        payload: bytes::Bytes::from_static(&[0x48, 0x01, 0x02]),
    };
    let body = encode_audio_body(&[&audio]).unwrap();
    let datagram = seal(&caller.send, 1, 0, &body);
    let opened = open(&listener.receive, &mut ReplayWindow::default(), &datagram).unwrap();
    assert_eq!(decode_audio_body(opened.body).unwrap(), vec![audio]);
    let hex = |b: &[u8]| {
        b.chunks(32)
            .map(|row| row.iter().map(|x| format!("{x:02x}")).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    format!(
        "```text\n\
         keying material (exporter output): {}\n\
         caller's key:   {}\n\
         listener's key: {}\n\
         audio: seq 0, time_us 1767225600000000, format \"opus\", payload 480102\n\
         body ({} bytes, one frame as in the stream):\n  {}\n\
         datagram from the caller, counter 1, ack 0 ({} bytes):\n  {}\n\
         ```\n",
        hex(&material).replace("\n  ", ""),
        hex(&material[..32]),
        hex(&material[32..]),
        body.len(),
        hex(&body),
        datagram.len(),
        hex(&datagram),
    )
}

fn render_limits() -> String {
    let rows: [(&str, String, &str); 16] = [
        (
            "PROTOCOL_VERSION",
            PROTOCOL_VERSION.to_string(),
            "version this document describes",
        ),
        (
            "MIN_PROTOCOL_VERSION",
            MIN_PROTOCOL_VERSION.to_string(),
            "oldest version this document's peers speak",
        ),
        ("MAX_WIDTH", MAX_WIDTH.to_string(), "pixels; 4K UHD"),
        ("MAX_HEIGHT", MAX_HEIGHT.to_string(), "pixels; 4K UHD"),
        (
            "MAX_PAYLOAD_LEN",
            MAX_PAYLOAD_LEN.to_string(),
            "bytes; MAX_WIDTH x MAX_HEIGHT x 3 (largest RGB24 frame)",
        ),
        (
            "HEADER_SLACK",
            HEADER_SLACK.to_string(),
            "bytes; everything in a video message but its payload",
        ),
        (
            "MAX_MESSAGE_LEN",
            MAX_MESSAGE_LEN.to_string(),
            "bytes; MAX_PAYLOAD_LEN + HEADER_SLACK, largest N",
        ),
        (
            "MAX_AUDIO_PAYLOAD_LEN",
            MAX_AUDIO_PAYLOAD_LEN.to_string(),
            "bytes of audio.payload; the most one Opus frame holds (RFC 6716)",
        ),
        (
            "MAX_DATAGRAM_LEN",
            MAX_DATAGRAM_LEN.to_string(),
            "bytes of one voice datagram, header and tag included (2.5)",
        ),
        (
            "MAX_AUDIO_PER_DATAGRAM",
            MAX_AUDIO_PER_DATAGRAM.to_string(),
            "audio messages in one voice datagram (2.5)",
        ),
        (
            "MAX_DISPLAY_NAME_LEN",
            MAX_DISPLAY_NAME_LEN.to_string(),
            "UTF-8 bytes of hello.name",
        ),
        (
            "MAX_SOFTWARE_LEN",
            MAX_SOFTWARE_LEN.to_string(),
            "UTF-8 bytes of hello.software and hello.software_version",
        ),
        (
            "MAX_BYE_TEXT_LEN",
            MAX_BYE_TEXT_LEN.to_string(),
            "UTF-8 bytes of bye.text",
        ),
        (
            "MAX_IDENT_LEN",
            MAX_IDENT_LEN.to_string(),
            "UTF-8 bytes of a type name, map key, codec name or bye reason",
        ),
        (
            "MAX_CODECS",
            MAX_CODECS.to_string(),
            "entries in hello.receive.codecs, and in hello.receive.audio",
        ),
        (
            "MAX_MAP_ENTRIES",
            MAX_MAP_ENTRIES.to_string(),
            "entries in any map, unknown fields included",
        ),
    ];
    let mut out = String::from("| limit | value | unit and meaning |\n| --- | ---: | --- |\n");
    for (name, value, meaning) in rows {
        out.push_str(&format!("| `{name}` | {value} | {meaning} |\n"));
    }
    out.push_str(&format!(
        "| `MAX_NESTING` | {MAX_NESTING} | levels of arrays, maps and tags (the message array is level 1) |\n"
    ));
    let secs = |d: std::time::Duration| format!("{}", d.as_secs_f64());
    for (name, value, meaning) in [
        (
            "PING_INTERVAL",
            secs(PING_INTERVAL),
            "seconds; longest gap between two pings a side sends while connected",
        ),
        (
            "PEER_TIMEOUT",
            secs(PEER_TIMEOUT),
            "seconds; a side that received nothing this long ends the call",
        ),
        (
            "HELLO_TIMEOUT",
            secs(HELLO_TIMEOUT),
            "seconds after the TLS handshake for the hello/accept exchange",
        ),
        (
            "CLOSE_TIMEOUT",
            secs(CLOSE_TIMEOUT),
            "seconds a side spends writing its bye, and reading for close_notify/EOF after a bye",
        ),
        (
            "MAX_PINGS_PER_SECOND",
            MAX_PINGS_PER_SECOND.to_string(),
            "most pings a side takes within one second; a sender sends at most this many per PEER_TIMEOUT",
        ),
        (
            "KEYFRAME_REQUEST_INTERVAL",
            secs(KEYFRAME_REQUEST_INTERVAL),
            "seconds; shortest gap between two keyframe requests a side sends, and between two keyframes it makes on request",
        ),
    ] {
        out.push_str(&format!("| `{name}` | {value} | {meaning} |\n"));
    }
    out
}

/// The call layer uses the protocol's timing values (PROTOCOL.md section 9
/// lists them from `protocol::limits`).
#[test]
fn the_call_layer_uses_the_specified_timings() {
    assert_eq!(vchat::call::PING_INTERVAL, PING_INTERVAL);
    assert_eq!(vchat::call::PEER_TIMEOUT, PEER_TIMEOUT);
    assert_eq!(vchat::call::handshake::HELLO_TIMEOUT, HELLO_TIMEOUT);
}

/// Replaces (or checks) the text between `<!-- BEGIN name -->` and `<!-- END name -->`.
fn sync_section(doc: &mut String, name: &str, generated: &str) -> bool {
    let begin = format!("<!-- BEGIN {name}: generated by tests/protocol_spec.rs -->\n");
    let end = format!("<!-- END {name} -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("PROTOCOL.md lacks the line {begin:?}"))
        + begin.len();
    let stop = start
        + doc[start..]
            .find(&end)
            .unwrap_or_else(|| panic!("PROTOCOL.md lacks {end:?}"));
    let fresh = format!("\n{generated}");
    if doc[start..stop] == fresh {
        return true;
    }
    doc.replace_range(start..stop, &fresh);
    false
}

#[test]
fn protocol_md_matches_the_code() {
    let path = protocol_md();
    let mut doc = std::fs::read_to_string(&path).expect("PROTOCOL.md exists");
    let examples_ok = sync_section(&mut doc, "EXAMPLES", &render_examples());
    let limits_ok = sync_section(&mut doc, "LIMITS", &render_limits());
    let datagram_ok = sync_section(&mut doc, "DATAGRAM", &render_datagram_vector());
    if examples_ok && limits_ok && datagram_ok {
        return;
    }
    if std::env::var_os("VCHAT_UPDATE_PROTOCOL_MD").is_some() {
        std::fs::write(&path, doc).expect("PROTOCOL.md written");
        return;
    }
    panic!(
        "PROTOCOL.md's generated sections differ from the code (examples ok: {examples_ok}, limits ok: \
         {limits_ok}, datagram ok: {datagram_ok}). If the change is deliberate: VCHAT_UPDATE_PROTOCOL_MD=1 cargo test --test protocol_spec"
    );
}

/// Seeds for `cargo fuzz run decode`: the first byte picks the role (even:
/// caller, odd: listener), the rest is what the peer sends.
#[test]
fn fuzz_seeds() {
    if std::env::var_os("VCHAT_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, message) in examples().iter().enumerate() {
        let mut seed = vec![1u8];
        seed.extend_from_slice(&encoded(&Message::Hello(hello("seed"))));
        seed.extend_from_slice(&encoded(message));
        std::fs::write(dir.join(format!("{i}-{}", message.kind())), seed).unwrap();
    }
    // Whole calls, seen from each side.
    let call = |role: u8, peer_accepts: bool| {
        let mut seed = vec![role];
        let mut push = |m: Message| seed.extend_from_slice(&encoded(&m));
        push(Message::Hello(hello("peer")));
        if peer_accepts {
            push(Message::Accept(Accept {
                version: PROTOCOL_VERSION,
            }));
        }
        push(Message::Camera { on: true });
        push(Message::Microphone { on: false });
        push(Message::Audio(Audio {
            seq: 1,
            capture_time_us: 1_000_000,
            format: AudioFormat::Opus,
            payload: bytes::Bytes::from_static(&[0x78, 0x01, 0x02]),
        }));
        push(Message::Video(raw_video(1, 4, 2, PixelFormat::I420)));
        push(Message::Video(raw_video(2, 3, 3, PixelFormat::Rgb24)));
        push(Message::Ping { nonce: 9 });
        push(Message::Pong {
            nonce: 8,
            time_us: Some(1_800_000),
        });
        push(Message::Bye(Bye::new(ByeReason::Hangup, "done")));
        seed
    };
    std::fs::write(dir.join("call-as-caller"), call(0, true)).unwrap();
    std::fs::write(dir.join("call-as-listener"), call(1, false)).unwrap();
}
