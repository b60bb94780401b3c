//! The call's set-up and its edges, driven by a scripted peer over an
//! in-memory pipe: vchat's real handshake and pipeline on one end
//! (`call::setup::handshake_and_run`), messages written from PROTOCOL.md on
//! the other. No sleeps: every step waits for the other side's bytes.
//!
//! Covers what a peer may legitimately do that once broke vchat (limits
//! below our capture size, pings before accept, an empty codec list) and
//! that every handshake failure the peer caused ends with a `bye` naming it,
//! then the end of the stream.

mod protocol_support;

use std::time::Duration;

use protocol_support::{encoded, hello, map, message_value, raw_video, value_frame};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vchat::call::handshake::local_hello;
use vchat::call::pipeline::{CallSummary, PipelineConfig};
use vchat::call::setup::{handshake_and_run, Plan};
use vchat::call::{CallError, EndReason, PEER_TIMEOUT};
use vchat::media::{Fps, Size, TestPatternSource};
use vchat::protocol::{
    Accept, Bye, ByeReason, Connection, FrameAssembler, Hello, Message, PixelFormat, Role, Video,
};
use vchat::ui::{DisplayState, UiHandle};

/// A bound on every wait, so a bug fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(20);

async fn guard<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {GUARD:?}"))
}

/// vchat on one end of a pipe, in `role`, sending a `width` x `height` test
/// pattern as raw RGB24; returns the pipe's other end for the peer.
fn vchat_side(
    role: Role,
    width: u32,
    height: u32,
) -> (DuplexStream, JoinHandle<Result<CallSummary, CallError>>) {
    vchat_side_with(role, width, height, PEER_TIMEOUT)
}

/// [`vchat_side`] with the peer timeout given.
fn vchat_side_with(
    role: Role,
    width: u32,
    height: u32,
    peer_timeout: Duration,
) -> (DuplexStream, JoinHandle<Result<CallSummary, CallError>>) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let plan = Plan {
        hello: local_hello("Us"),
        wanted: PixelFormat::Rgb24,
        config: PipelineConfig {
            peer_timeout,
            ..PipelineConfig::for_peer("peer")
        },
        on_video_taken: None,
    };
    let source = Box::new(TestPatternSource::new(
        Size::new(width, height).unwrap(),
        Fps::new(30).unwrap(),
    ));
    let (_no_window, commands) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let _keep = _no_window;
        let ui = UiHandle::headless(DisplayState::new("peer", ""));
        let conn = Connection::new(ours, role);
        let map_io = |e: std::io::Error| CallError::ConnectionLost(e.to_string());
        handshake_and_run(conn, plan, map_io, source, ui, commands).await
    });
    (theirs, task)
}

fn peer_role(ours: Role) -> Role {
    match ours {
        Role::Caller => Role::Listener,
        Role::Listener => Role::Caller,
    }
}

/// The peer's side of the handshake, with `their_hello`.
async fn peer_handshake(conn: &mut Connection<DuplexStream>, their_hello: Hello) -> Hello {
    let read = |m: Option<Message>| match m {
        Some(Message::Hello(h)) => h,
        other => panic!("expected vchat's hello, got {other:?}"),
    };
    match conn.session().role() {
        Role::Caller => {
            conn.write_message(&Message::Hello(their_hello))
                .await
                .unwrap();
            let ours = read(conn.read_message().await.unwrap());
            match conn.read_message().await.unwrap() {
                Some(Message::Accept(_)) => ours,
                other => panic!("expected accept, got {other:?}"),
            }
        }
        Role::Listener => {
            let ours = read(conn.read_message().await.unwrap());
            conn.write_message(&Message::Hello(their_hello))
                .await
                .unwrap();
            let version = conn.session().version().unwrap();
            conn.write_message(&Message::Accept(Accept { version }))
                .await
                .unwrap();
            ours
        }
    }
}

/// Reads until the next whole video frame (a large one comes in parts
/// since version 4), answering nothing.
async fn next_video(conn: &mut Connection<DuplexStream>) -> Video {
    let mut frames = FrameAssembler::new();
    loop {
        let Some(message) = conn.read_message().await.unwrap() else {
            panic!("vchat closed the stream before sending video");
        };
        if let Some(Message::Video(v)) = frames.feed(message) {
            return v;
        }
    }
}

/// The peer hangs up and reads vchat's side to its end.
async fn hang_up(conn: &mut Connection<DuplexStream>) {
    conn.close(Bye::new(ByeReason::Hangup, "done"))
        .await
        .unwrap();
    while let Ok(Some(_)) = conn.read_message().await {}
}

async fn ended_cleanly(task: JoinHandle<Result<CallSummary, CallError>>) -> CallSummary {
    let summary = guard("vchat's end", task)
        .await
        .expect("vchat's side must not panic")
        .expect("the call ends cleanly");
    assert!(
        matches!(summary.end, EndReason::PeerHungUp(_)),
        "{:?}",
        summary.end
    );
    summary
}

#[tokio::test]
async fn a_receiver_smaller_than_our_capture_gets_our_picture_scaled_to_fit() {
    for role in [Role::Listener, Role::Caller] {
        // We capture 640x480; the peer takes at most 639x480.
        let (stream, task) = vchat_side(role, 640, 480);
        let mut peer = Connection::new(stream, peer_role(role));
        let mut small = hello("Peer");
        small.receive.max_width = 639;
        small.receive.max_height = 480;
        guard("handshake", peer_handshake(&mut peer, small)).await;
        for _ in 0..3 {
            let video = guard("a video frame", next_video(&mut peer)).await;
            // 4:3 kept: 639 wide, 479.25 rounded down.
            assert_eq!((video.width, video.height), (639, 479), "{role:?}");
            assert_eq!(video.format, PixelFormat::Rgb24);
            assert_eq!(video.payload.len(), 639 * 479 * 3);
        }
        guard("hang-up", hang_up(&mut peer)).await;
        ended_cleanly(task).await;
    }
}

#[tokio::test]
async fn a_caller_takes_ping_pong_and_camera_before_accept() {
    let (stream, task) = vchat_side(Role::Caller, 64, 48);
    let mut peer = Connection::new(stream, Role::Listener);
    let Some(Message::Hello(_)) = guard("hello", peer.read_message()).await.unwrap() else {
        panic!("vchat's first message must be hello")
    };
    peer.write_message(&Message::Hello(hello("Listener")))
        .await
        .unwrap();
    // PROTOCOL.md: ping, pong and camera may flow before accept.
    peer.write_message(&Message::Ping { nonce: 7 })
        .await
        .unwrap();
    peer.write_message(&Message::Pong {
        nonce: 3,
        time_us: None,
    })
    .await
    .unwrap();
    peer.write_message(&Message::Camera { on: false })
        .await
        .unwrap();
    match guard("pong", peer.read_message()).await.unwrap() {
        Some(Message::Pong { nonce: 7, .. }) => {}
        other => panic!("expected pong 7 before accept, got {other:?}"),
    }
    let version = peer.session().version().unwrap();
    peer.write_message(&Message::Accept(Accept { version }))
        .await
        .unwrap();
    let video = guard("video after accept", next_video(&mut peer)).await;
    assert_eq!((video.width, video.height), (64, 48));
    guard("hang-up", hang_up(&mut peer)).await;
    ended_cleanly(task).await;
}

/// A hello whose codec list is empty, or names only codecs vchat does not
/// know, as raw CBOR (our own encoder cannot write unknown names).
fn hello_frame_with_codecs(codecs: &[&str]) -> bytes::BytesMut {
    let codecs = codecs.iter().map(|&c| c.into()).collect();
    value_frame(&message_value(
        "hello",
        map(vec![
            ("version", vchat::protocol::PROTOCOL_VERSION.into()),
            ("software", "spec-peer".into()),
            ("software_version", "1".into()),
            ("name", "Peer".into()),
            (
                "receive",
                map(vec![
                    ("codecs", ciborium::Value::Array(codecs)),
                    ("max_width", 640.into()),
                    ("max_height", 480.into()),
                ]),
            ),
        ]),
    ))
}

/// A peer reading vchat's frames raw, without a session of its own: for
/// scripts that write hand-made CBOR a session would not let them send.
struct RawPeer {
    stream: DuplexStream,
    buf: bytes::BytesMut,
}

impl RawPeer {
    async fn next(&mut self) -> Option<Message> {
        use tokio::io::AsyncReadExt;
        loop {
            match vchat::protocol::decode_frame(&mut self.buf).expect("vchat sends valid frames") {
                Some(vchat::protocol::Decoded::Message(m)) => return Some(m),
                Some(_) => continue,
                None => {}
            }
            if self.stream.read_buf(&mut self.buf).await.unwrap() == 0 {
                return None;
            }
        }
    }
}

#[tokio::test]
async fn a_peer_that_takes_no_video_we_know_still_gets_a_call() {
    for codecs in [&[][..], &["h265", "av1"][..]] {
        let (mut stream, task) = vchat_side(Role::Listener, 64, 48);
        stream
            .write_all(&hello_frame_with_codecs(codecs))
            .await
            .unwrap();
        let mut peer = RawPeer {
            stream,
            buf: bytes::BytesMut::new(),
        };
        // vchat pings once a second: a ping shows it is in the call; no
        // video up to the next ping shows it sends none.
        let until_ping = async |peer: &mut RawPeer| loop {
            match guard("vchat's messages", peer.next()).await {
                Some(Message::Ping { .. }) => return,
                Some(Message::Video(_)) => panic!("vchat sent video the peer cannot take"),
                Some(_) => {}
                None => panic!("vchat ended the call ({codecs:?})"),
            }
        };
        until_ping(&mut peer).await;
        // Video the other way still works.
        for seq in 0..3 {
            let frame = encoded(&Message::Video(raw_video(seq, 8, 8, PixelFormat::Rgb24)));
            peer.stream.write_all(&frame).await.unwrap();
        }
        until_ping(&mut peer).await;
        let bye = encoded(&Message::Bye(Bye::new(ByeReason::Hangup, "done")));
        peer.stream.write_all(&bye).await.unwrap();
        peer.stream.shutdown().await.unwrap();
        while guard("vchat's close", peer.next()).await.is_some() {}
        let summary = guard("vchat's end", task)
            .await
            .unwrap()
            .expect("a clean end");
        assert_eq!(summary.totals.frames_sent, 0, "{codecs:?}");
        assert_eq!(summary.totals.frames_received, 3, "{codecs:?}");
    }
}

/// What vchat answers a peer that breaks the protocol during the handshake:
/// the bye it sent, and whether the stream then ended.
async fn answer_to(role: Role, script: Vec<bytes::BytesMut>) -> Bye {
    let (mut stream, task) = vchat_side(role, 64, 48);
    let said_something = !script.is_empty();
    for bytes in script {
        stream.write_all(&bytes).await.unwrap();
    }
    if said_something {
        // Closing our side lets vchat finish its close without waiting out
        // its close timeout (it reads on to our end after its bye).
        stream.shutdown().await.unwrap();
    }
    let mut raw = Vec::new();
    guard("vchat closing the stream", async {
        use tokio::io::AsyncReadExt;
        stream.read_to_end(&mut raw).await.unwrap();
    })
    .await;
    let result = guard("vchat's end", task).await.expect("no panic");
    assert!(result.is_err(), "the call must fail: {result:?}");
    // The last frame vchat sent must be a bye.
    let mut buf = bytes::BytesMut::from(&raw[..]);
    let mut last = None;
    while let Some(decoded) = vchat::protocol::decode_frame(&mut buf).unwrap() {
        last = Some(decoded);
    }
    assert!(buf.is_empty(), "vchat's last frame was cut short");
    match last {
        Some(vchat::protocol::Decoded::Message(Message::Bye(bye))) => bye,
        other => panic!("vchat's last message must be bye, got {other:?}"),
    }
}

#[tokio::test]
async fn handshake_errors_the_peer_caused_end_with_a_bye_then_the_stream_ends() {
    let ping = encoded(&Message::Ping { nonce: 1 });
    let caller_hello = encoded(&Message::Hello(hello("Caller")));
    let listener_hello = encoded(&Message::Hello(hello("Listener")));
    let mut oversized = bytes::BytesMut::new();
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    let cases: Vec<(&str, Role, Vec<bytes::BytesMut>)> = vec![
        ("ping before hello", Role::Listener, vec![ping.clone()]),
        ("oversized frame", Role::Listener, vec![oversized.clone()]),
        (
            "second hello",
            Role::Listener,
            vec![caller_hello.clone(), caller_hello.clone()],
        ),
        (
            "accept before hello",
            Role::Caller,
            vec![encoded(&Message::Accept(Accept {
                version: vchat::protocol::PROTOCOL_VERSION,
            }))],
        ),
        (
            "video before accept",
            Role::Caller,
            vec![
                listener_hello.clone(),
                encoded(&Message::Video(raw_video(0, 8, 8, PixelFormat::Rgb24))),
            ],
        ),
        (
            "accept with the wrong version",
            Role::Caller,
            vec![
                listener_hello.clone(),
                encoded(&Message::Accept(Accept { version: 77 })),
            ],
        ),
        (
            "oversized frame before accept",
            Role::Caller,
            vec![listener_hello.clone(), oversized],
        ),
    ];
    for (what, role, script) in cases {
        let bye = answer_to(role, script).await;
        assert_eq!(bye.reason, ByeReason::ProtocolError, "{what}: {bye:?}");
        assert!(
            !bye.text.is_empty(),
            "{what}: the bye must say what was wrong"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_says_hello_is_told_so_when_the_hello_timeout_ends() {
    for role in [Role::Listener, Role::Caller] {
        // Nothing from the peer: time runs (paused, so at once) to the timeout.
        let bye = answer_to(role, vec![]).await;
        assert_eq!(bye.reason, ByeReason::ProtocolError, "{role:?}");
        assert!(bye.text.contains("handshake"), "{role:?}: {}", bye.text);
    }
}

#[tokio::test]
async fn a_large_frame_crawling_over_a_slow_link_is_not_a_vanished_peer() {
    // A peer timeout of 300 ms, and a frame that takes over a second to
    // arrive: liveness must count its bytes as they come.
    let timeout = Duration::from_millis(300);
    let (stream, task) = vchat_side_with(Role::Listener, 64, 48, timeout);
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Take what vchat sends, so only our slow writing is slow.
    let drain = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut sink = vec![0u8; 64 * 1024];
        while reader.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    writer
        .write_all(&encoded(&Message::Hello(hello("Slow"))))
        .await
        .unwrap();
    let frame = encoded(&Message::Video(raw_video(0, 64, 48, PixelFormat::Rgb24)));
    let started = std::time::Instant::now();
    let mut link = tokio::time::interval(Duration::from_millis(20));
    for chunk in frame.chunks(128) {
        // The link's pace, not a synchronisation: 128 bytes every 20 ms.
        link.tick().await;
        writer
            .write_all(chunk)
            .await
            .expect("vchat is still in the call");
    }
    assert!(
        started.elapsed() > timeout * 3,
        "the frame must take longer than the timeout"
    );
    let bye = encoded(&Message::Bye(Bye::new(ByeReason::Hangup, "done")));
    writer
        .write_all(&bye)
        .await
        .expect("vchat is still in the call");
    writer.shutdown().await.unwrap();
    let summary = ended_cleanly(task).await;
    assert_eq!(summary.totals.frames_received, 1);
    guard("drain", drain).await.unwrap();
}
