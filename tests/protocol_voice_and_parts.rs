//! Version 4 on the wire: `audio`, `microphone`, and video frames in parts
//! (`video.total_len`, `video_part`), through the codec and the session's
//! rules, including everything a peer may get wrong.

mod protocol_support;

use bytes::Bytes;
use protocol_support::{decode_one, encoded, hello};
use vchat::protocol::limits::{MAX_AUDIO_PAYLOAD_LEN, MAX_PAYLOAD_LEN};
use vchat::protocol::{
    Accept, Audio, AudioFormat, Decoded, Message, PixelFormat, ProtocolError, Role, Session, Video,
    VideoPart, PROTOCOL_VERSION,
};

/// A listener's session with a version-`version` caller, accepted.
fn live_listener(version: u32, peer_takes_audio: bool) -> Session {
    let mut s = Session::new(Role::Listener);
    let mut theirs = hello("caller");
    theirs.version = version;
    if !peer_takes_audio {
        theirs.receive.audio.clear();
    }
    s.on_receive(&Message::Hello(theirs)).unwrap();
    s.on_send(&Message::Hello(hello("listener"))).unwrap();
    let version = version.min(PROTOCOL_VERSION);
    s.on_send(&Message::Accept(Accept { version })).unwrap();
    s
}

fn jpeg_in_parts(seq: u64, total: usize, first: usize) -> Video {
    Video {
        seq,
        capture_time_us: 1,
        width: 64,
        height: 48,
        format: PixelFormat::Jpeg,
        payload: Bytes::from(vec![7u8; first]),
        total_len: Some(total),
    }
}

fn part(seq: u64, len: usize) -> Message {
    Message::VideoPart(VideoPart {
        seq,
        payload: Bytes::from(vec![9u8; len]),
    })
}

fn audio(seq: u64, len: usize) -> Message {
    Message::Audio(Audio {
        seq,
        capture_time_us: seq * 20_000,
        format: AudioFormat::Opus,
        payload: Bytes::from(vec![0x48; len]),
    })
}

#[test]
fn every_new_message_round_trips() {
    for message in [
        Message::Video(jpeg_in_parts(3, 10_000, 4_000)),
        part(3, 6_000),
        audio(1, 80),
        Message::Microphone { on: false },
        Message::Microphone { on: true },
    ] {
        let frame = encoded(&message);
        assert_eq!(decode_one(frame).unwrap(), Decoded::Message(message));
    }
}

#[test]
fn a_frame_in_parts_is_taken_with_voice_between_its_parts() {
    let mut s = live_listener(PROTOCOL_VERSION, true);
    s.on_receive(&Message::Video(jpeg_in_parts(1, 10_000, 4_000)))
        .unwrap();
    s.on_receive(&audio(1, 80)).unwrap();
    s.on_receive(&part(1, 3_000)).unwrap();
    s.on_receive(&Message::Ping { nonce: 1 }).unwrap();
    s.on_receive(&audio(2, 80)).unwrap();
    s.on_receive(&part(1, 3_000)).unwrap();
    // Whole now: the next frame may start.
    s.on_receive(&Message::Video(jpeg_in_parts(2, 5_000, 1)))
        .unwrap();
    s.on_receive(&part(2, 4_999)).unwrap();
}

#[test]
fn parts_that_do_not_belong_are_protocol_errors() {
    let invalid = |r: Result<(), ProtocolError>| match r {
        Err(ProtocolError::InvalidValue { field, problem }) => format!("{field}: {problem}"),
        other => panic!("expected a refusal, got {other:?}"),
    };
    // No frame open.
    let mut s = live_listener(PROTOCOL_VERSION, true);
    assert!(invalid(s.on_receive(&part(1, 10))).contains("no video frame in parts"));
    // Another frame's part.
    let mut s = live_listener(PROTOCOL_VERSION, true);
    s.on_receive(&Message::Video(jpeg_in_parts(5, 100, 10)))
        .unwrap();
    assert!(invalid(s.on_receive(&part(6, 10))).contains("belongs to frame 6"));
    // More than is left.
    let mut s = live_listener(PROTOCOL_VERSION, true);
    s.on_receive(&Message::Video(jpeg_in_parts(5, 100, 10)))
        .unwrap();
    assert!(invalid(s.on_receive(&part(5, 91))).contains("only 90 left"));
    // A new frame before the open one is whole.
    let mut s = live_listener(PROTOCOL_VERSION, true);
    s.on_receive(&Message::Video(jpeg_in_parts(5, 100, 10)))
        .unwrap();
    assert!(
        invalid(s.on_receive(&Message::Video(jpeg_in_parts(6, 100, 10))))
            .contains("lacks 90 bytes")
    );
}

#[test]
fn declared_lengths_are_checked_before_anything_is_kept() {
    // A first part as long as the whole, or empty, or a whole beyond the limit.
    for (total, first) in [(100, 100), (100, 0)] {
        let v = jpeg_in_parts(1, total, first);
        assert!(vchat::protocol::check_message(&Message::Video(v)).is_err());
    }
    let huge = jpeg_in_parts(1, MAX_PAYLOAD_LEN + 1, 10);
    assert!(vchat::protocol::check_message(&Message::Video(huge)).is_err());
    // A raw frame's whole must be its exact size.
    let raw = Video {
        format: PixelFormat::Rgb24,
        width: 4,
        height: 4,
        ..jpeg_in_parts(1, 47, 10)
    };
    assert!(vchat::protocol::check_message(&Message::Video(raw.clone())).is_err());
    let exact = Video {
        total_len: Some(48),
        ..raw
    };
    assert!(vchat::protocol::check_message(&Message::Video(exact)).is_ok());
    // Empty parts and audio outside 1..=MAX_AUDIO_PAYLOAD_LEN.
    assert!(vchat::protocol::check_message(&part(1, 0)).is_err());
    assert!(vchat::protocol::check_message(&audio(1, 0)).is_err());
    assert!(vchat::protocol::check_message(&audio(1, MAX_AUDIO_PAYLOAD_LEN + 1)).is_err());
    assert!(vchat::protocol::check_message(&audio(1, MAX_AUDIO_PAYLOAD_LEN)).is_ok());
}

#[test]
fn a_version_3_call_carries_no_voice_and_no_parts() {
    let mut s = live_listener(3, true);
    assert!(s.on_receive(&audio(1, 80)).is_err());
    let mut s = live_listener(3, true);
    assert!(s
        .on_receive(&Message::Video(jpeg_in_parts(1, 100, 10)))
        .is_err());
    // And we do not send them either.
    let mut s = live_listener(3, true);
    assert!(s.on_send(&audio(1, 80)).is_err());
    assert!(s.on_send(&Message::Microphone { on: false }).is_err());
    assert!(s
        .on_send(&Message::Video(jpeg_in_parts(1, 100, 10)))
        .is_err());
}

#[test]
fn voice_goes_only_to_a_peer_that_listed_it_and_in_order() {
    // Our hello lists opus; a peer sending audio we did not list is refused.
    let mut s = Session::new(Role::Listener);
    s.on_receive(&Message::Hello(hello("caller"))).unwrap();
    let mut ours = hello("listener");
    ours.receive.audio.clear();
    s.on_send(&Message::Hello(ours)).unwrap();
    s.on_send(&Message::Accept(Accept {
        version: PROTOCOL_VERSION,
    }))
    .unwrap();
    assert!(s.on_receive(&audio(1, 80)).is_err());
    // A peer that did not list it gets none from us.
    let mut s = live_listener(PROTOCOL_VERSION, false);
    assert!(s.on_send(&audio(1, 80)).is_err());
    // Sequence numbers only grow.
    let mut s = live_listener(PROTOCOL_VERSION, true);
    s.on_receive(&audio(5, 80)).unwrap();
    assert!(matches!(
        s.on_receive(&audio(5, 80)),
        Err(ProtocolError::SequenceNotIncreasing { .. })
    ));
    // Not before accept.
    let mut s = Session::new(Role::Caller);
    s.on_send(&Message::Hello(hello("caller"))).unwrap();
    s.on_receive(&Message::Hello(hello("listener"))).unwrap();
    assert!(s.on_receive(&audio(1, 80)).is_err());
}
