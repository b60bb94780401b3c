//! `Connection` over real streams: in-memory duplex pipes and TCP sockets on
//! 127.0.0.1:0. No sleeps: every step waits on the other side's messages.

mod protocol_support;

use protocol_support::{encoded, frame, hello, raw_video};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use vchat::protocol::{
    Accept, Bye, ByeReason, Connection, Hello, Message, PixelFormat, ProtocolError, Role,
    PROTOCOL_VERSION,
};

fn pipe() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(64 * 1024)
}

/// Listener side of a handshake: the caller's hello, then our hello and accept.
async fn answer<S>(conn: &mut Connection<S>) -> Hello
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(Message::Hello(peer)) = conn.read_message().await.unwrap() else {
        panic!("no hello")
    };
    conn.write_message(&Message::Hello(hello("Bea")))
        .await
        .unwrap();
    let version = conn.session().version().unwrap();
    conn.write_message(&Message::Accept(Accept { version }))
        .await
        .unwrap();
    peer
}

/// Caller side: hello, then wait for the listener's hello and accept.
async fn call<S>(conn: &mut Connection<S>) -> Hello
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    conn.write_message(&Message::Hello(hello("Ada")))
        .await
        .unwrap();
    let Some(Message::Hello(peer)) = conn.read_message().await.unwrap() else {
        panic!("no hello")
    };
    assert!(!conn.session().is_connected());
    let Some(Message::Accept(_)) = conn.read_message().await.unwrap() else {
        panic!("no accept")
    };
    assert!(conn.session().is_connected());
    peer
}

#[tokio::test]
async fn handshake_video_ping_and_bye() {
    let (a, b) = pipe();
    let listener = tokio::spawn(async move {
        let mut conn = Connection::new(b, Role::Listener);
        assert_eq!(answer(&mut conn).await.display_name, "Ada");
        let Some(Message::Video(v)) = conn.read_message().await.unwrap() else {
            panic!()
        };
        assert_eq!(v, raw_video(1, 64, 48, PixelFormat::I420));
        let Some(Message::Ping { nonce }) = conn.read_message().await.unwrap() else {
            panic!()
        };
        conn.write_message(&Message::Pong {
            nonce,
            time_us: None,
        })
        .await
        .unwrap();
        let Some(Message::Bye(bye)) = conn.read_message().await.unwrap() else {
            panic!()
        };
        assert_eq!(bye.reason, ByeReason::Hangup);
        assert_eq!(
            conn.read_message().await.unwrap(),
            None,
            "clean end after bye"
        );
    });
    let mut conn = Connection::new(a, Role::Caller);
    assert_eq!(call(&mut conn).await.display_name, "Bea");
    assert_eq!(conn.session().version(), Some(PROTOCOL_VERSION));
    conn.write_message(&Message::Video(raw_video(1, 64, 48, PixelFormat::I420)))
        .await
        .unwrap();
    conn.write_message(&Message::Ping { nonce: 77 })
        .await
        .unwrap();
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::Pong {
            nonce: 77,
            time_us: None
        })
    );
    conn.close(Bye::new(ByeReason::Hangup, "bye"))
        .await
        .unwrap();
    listener.await.unwrap();
}

#[tokio::test]
async fn clean_end_of_stream_between_messages_is_none() {
    let (a, mut b) = pipe();
    b.write_all(&encoded(&Message::Hello(hello("x"))))
        .await
        .unwrap();
    b.shutdown().await.unwrap();
    let mut conn = Connection::new(a, Role::Listener);
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Some(Message::Hello(_))
    ));
    assert_eq!(conn.read_message().await.unwrap(), None);
}

#[tokio::test]
async fn end_of_stream_mid_frame_is_an_error() {
    let full = encoded(&Message::Hello(hello("x")));
    for cut in [1, 3, 4, 5, full.len() - 1] {
        let (a, mut b) = pipe();
        b.write_all(&full[..cut]).await.unwrap();
        drop(b);
        let mut conn = Connection::new(a, Role::Listener);
        let err = conn.read_message().await.unwrap_err();
        assert!(err.is_connection_lost());
        let ProtocolError::Truncated { received, expected } = err else {
            panic!("{err}")
        };
        assert_eq!(received, cut);
        assert_eq!(expected, if cut < 4 { 4 } else { full.len() });
    }
}

#[tokio::test]
async fn oversized_prefix_fails_at_once_without_waiting_for_the_body() {
    let (a, mut b) = pipe();
    // The sender keeps the stream open: only the 4 bytes are ever available.
    b.write_all(&[0xFF, 0xFF, 0xFF, 0xFF]).await.unwrap();
    let mut conn = Connection::new(a, Role::Listener);
    let err = conn.read_message().await.unwrap_err();
    assert!(matches!(err, ProtocolError::MessageTooLong { .. }), "{err}");
    drop(b);
}

#[tokio::test]
async fn unknown_message_types_are_skipped_and_counted() {
    let (a, mut b) = pipe();
    b.write_all(&encoded(&Message::Hello(hello("x"))))
        .await
        .unwrap();
    // ["wave", {"hand": "left"}], then a ping.
    b.write_all(&frame(b"\x82\x64wave\xa1\x64hand\x64left"))
        .await
        .unwrap();
    b.write_all(&encoded(&Message::Ping { nonce: 5 }))
        .await
        .unwrap();
    let mut conn = Connection::new(a, Role::Listener);
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Some(Message::Hello(_))
    ));
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::Ping { nonce: 5 })
    );
    assert_eq!(conn.session().unknown_received(), 1);
}

#[tokio::test]
async fn a_protocol_violation_ends_the_call_with_a_bye_naming_it() {
    let (a, mut b) = pipe();
    // The listener's side is written by hand to bypass our encoder's checks:
    // hello, accept, then a 640x480 rgb24 frame carrying only 1000 bytes.
    b.write_all(&encoded(&Message::Hello(hello("Eve"))))
        .await
        .unwrap();
    b.write_all(&encoded(&Message::Accept(Accept {
        version: PROTOCOL_VERSION,
    })))
    .await
    .unwrap();
    let mut cbor = b"\x82\x65video\xa6\x63seq\x01\x67time_us\x00\x65width\x19\x02\x80\x66height\x19\x01\xe0\x66format\x65rgb24\x67payload\x59\x03\xe8".to_vec();
    cbor.extend_from_slice(&[0u8; 1000]);
    b.write_all(&frame(&cbor)).await.unwrap();

    let mut conn = Connection::new(a, Role::Caller);
    call(&mut conn).await;
    let err = conn.read_message().await.unwrap_err();
    assert!(!err.is_connection_lost());
    conn.close(err.bye()).await.unwrap();

    // What the listener receives: the caller's hello, then the bye.
    let mut peer = Connection::new(b, Role::Listener);
    assert!(matches!(
        peer.read_message().await.unwrap(),
        Some(Message::Hello(_))
    ));
    let Some(Message::Bye(bye)) = peer.read_message().await.unwrap() else {
        panic!("no bye")
    };
    assert_eq!(bye.reason, ByeReason::ProtocolError);
    assert_eq!(
        bye.text,
        "video frame 640x480 rgb24 declares 1000 payload bytes, expected 921600"
    );
    assert_eq!(peer.read_message().await.unwrap(), None);
}

#[tokio::test]
async fn a_declined_call_ends_with_the_listeners_bye() {
    let (a, b) = pipe();
    let listener = tokio::spawn(async move {
        let mut conn = Connection::new(b, Role::Listener);
        assert!(matches!(
            conn.read_message().await.unwrap(),
            Some(Message::Hello(_))
        ));
        conn.write_message(&Message::Hello(hello("Bea")))
            .await
            .unwrap();
        conn.close(Bye::new(ByeReason::Declined, "not now"))
            .await
            .unwrap();
    });
    let mut conn = Connection::new(a, Role::Caller);
    conn.write_message(&Message::Hello(hello("Ada")))
        .await
        .unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Some(Message::Hello(_))
    ));
    let Some(Message::Bye(bye)) = conn.read_message().await.unwrap() else {
        panic!()
    };
    assert_eq!(
        (bye.reason, bye.text.as_str()),
        (ByeReason::Declined, "not now")
    );
    assert!(!conn.session().is_connected());
    assert_eq!(conn.read_message().await.unwrap(), None);
    listener.await.unwrap();
}

#[tokio::test]
async fn a_newer_peer_is_spoken_to_in_our_version() {
    let (a, mut b) = pipe();
    let mut newer = hello("Future");
    newer.version = 7;
    b.write_all(&encoded(&Message::Hello(newer))).await.unwrap();
    b.write_all(&encoded(&Message::Accept(Accept {
        version: PROTOCOL_VERSION,
    })))
    .await
    .unwrap();
    let mut conn = Connection::new(a, Role::Caller);
    call(&mut conn).await;
    assert_eq!(conn.session().version(), Some(PROTOCOL_VERSION));

    // Accepting in the newer version is a protocol error.
    let (a, mut b) = pipe();
    let mut newer = hello("Future");
    newer.version = 7;
    b.write_all(&encoded(&Message::Hello(newer))).await.unwrap();
    b.write_all(&encoded(&Message::Accept(Accept { version: 7 })))
        .await
        .unwrap();
    let mut conn = Connection::new(a, Role::Caller);
    conn.write_message(&Message::Hello(hello("Ada")))
        .await
        .unwrap();
    conn.read_message().await.unwrap();
    let err = conn.read_message().await.unwrap_err();
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

#[tokio::test]
async fn sends_the_protocol_forbids_are_refused_locally() {
    let (a, mut b) = pipe();
    let mut conn = Connection::new(a, Role::Caller);
    let early = conn
        .write_message(&Message::Ping { nonce: 1 })
        .await
        .unwrap_err();
    assert!(early.is_local(), "{early}");
    conn.write_message(&Message::Hello(hello("Ada")))
        .await
        .unwrap();
    let video = Message::Video(raw_video(1, 2, 2, PixelFormat::Rgb24));
    assert!(conn.write_message(&video).await.unwrap_err().is_local());
    drop(conn);
    // Only the hello reached the wire.
    let mut wire = Vec::new();
    b.read_to_end(&mut wire).await.unwrap();
    assert_eq!(wire, encoded(&Message::Hello(hello("Ada"))).to_vec());
}

/// Both sides send full-HD RGB frames at once over TCP, each from its own
/// writer task: with split halves neither can block the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_hd_frames_both_ways_over_tcp() {
    const FRAMES: u64 = 3;
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();

    async fn run(stream: TcpStream, role: Role) -> u64 {
        let mut conn = Connection::new(stream, role);
        match role {
            Role::Caller => call(&mut conn).await,
            Role::Listener => answer(&mut conn).await,
        };
        let (mut reader, mut writer) = conn.into_split();
        let send = tokio::spawn(async move {
            for seq in 1..=FRAMES {
                let frame = raw_video(seq, 1920, 1080, PixelFormat::Rgb24);
                writer.write_message(&Message::Video(frame)).await.unwrap();
            }
            writer
                .close(Bye::new(ByeReason::Hangup, "done"))
                .await
                .unwrap();
        });
        let mut received = 0;
        loop {
            match reader.read_message().await.unwrap() {
                Some(Message::Video(v)) => {
                    assert_eq!(v.payload.len(), 1920 * 1080 * 3);
                    assert_eq!(
                        v.payload,
                        raw_video(v.seq, 1920, 1080, PixelFormat::Rgb24).payload
                    );
                    received += 1;
                }
                Some(Message::Bye(_)) => {}
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            }
        }
        send.await.unwrap();
        received
    }

    let listener = tokio::spawn(async move {
        let (stream, _) = server.accept().await.unwrap();
        run(stream, Role::Listener).await
    });
    let caller = run(TcpStream::connect(addr).await.unwrap(), Role::Caller).await;
    assert_eq!(caller, FRAMES);
    assert_eq!(listener.await.unwrap(), FRAMES);
}

#[tokio::test]
async fn payload_bytes_arrive_intact_through_a_tiny_pipe() {
    // A 64-byte pipe forces many partial reads and writes.
    let (a, b) = tokio::io::duplex(64);
    let frame = raw_video(1, 33, 17, PixelFormat::I420);
    let expected = frame.clone();
    let writer = tokio::spawn(async move {
        let mut conn = Connection::new(b, Role::Listener);
        answer(&mut conn).await;
        conn.write_message(&Message::Video(frame)).await.unwrap();
        conn.write_message(&Message::Camera { on: false })
            .await
            .unwrap();
    });
    let mut conn = Connection::new(a, Role::Caller);
    call(&mut conn).await;
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::Video(expected))
    );
    assert_eq!(
        conn.read_message().await.unwrap(),
        Some(Message::Camera { on: false })
    );
    writer.await.unwrap();
}

/// Over TCP, a receiver that keeps the previous frame while reading the next
/// (as the decoder does) gets its large frames into a few reused buffers,
/// not one new frame-sized buffer per frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_reuse_receive_buffers() {
    const FRAMES: u64 = 40;
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let sender = tokio::spawn(async move {
        let (stream, _) = server.accept().await.unwrap();
        let mut conn = Connection::new(stream, Role::Listener);
        answer(&mut conn).await;
        for seq in 1..=FRAMES {
            let frame = raw_video(seq, 640, 480, PixelFormat::Rgb24);
            conn.write_message(&Message::Video(frame)).await.unwrap();
        }
        conn.close(Bye::new(ByeReason::Hangup, "done"))
            .await
            .unwrap();
    });
    let mut conn = Connection::new(TcpStream::connect(addr).await.unwrap(), Role::Caller);
    call(&mut conn).await;
    let (mut reader, _writer) = conn.into_split();
    let expected = raw_video(1, 640, 480, PixelFormat::Rgb24).payload;
    let mut previous = None;
    let mut received = 0;
    while let Some(message) = reader.read_message().await.unwrap() {
        if let Message::Video(video) = message {
            assert_eq!(video.payload, expected, "frame {}", video.seq);
            // The frame before stays alive until this one has arrived.
            previous = Some(video);
            received += 1;
        }
    }
    drop(previous);
    sender.await.unwrap();
    assert_eq!(received, FRAMES);
    let (allocated, reused) = reader.receive_buffer_counts();
    assert_eq!(allocated + reused, FRAMES);
    assert!(allocated <= 3, "{allocated} buffers for {FRAMES} frames");
}
