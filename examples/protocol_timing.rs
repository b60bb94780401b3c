//! Rough timing of the protocol's hot path against a plain memory copy:
//! encoding and decoding a 1920x1080 RGB24 frame (6.2 MB), and moving frames
//! through `Connection` over an in-memory pipe versus raw `write_all`.
//!
//! Run with `cargo run --release --example protocol_timing`. Not a test: the
//! numbers depend on the machine, so nothing is asserted.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vchat::protocol::{
    decode_frame, encode_frame, Accept, Connection, Decoded, Hello, Message, PixelFormat,
    ProtocolError, Receive, Role, Video, PROTOCOL_VERSION,
};

const ROUNDS: u32 = 20;

fn frame(seq: u64) -> Video {
    let len = PixelFormat::Rgb24.raw_len(1920, 1080).unwrap_or_default();
    Video {
        seq,
        capture_time_us: 0,
        width: 1920,
        height: 1080,
        format: PixelFormat::Rgb24,
        payload: Bytes::from(vec![0x5A; len]),
        total_len: None,
    }
}

fn per_round(total: Duration) -> String {
    format!(
        "{:>9.3} ms",
        total.as_secs_f64() * 1000.0 / f64::from(ROUNDS)
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let message = Message::Video(frame(1));
    let Message::Video(video) = &message else {
        unreachable!()
    };

    let start = Instant::now();
    for _ in 0..ROUNDS {
        let copy = video.payload.to_vec();
        std::hint::black_box(copy);
    }
    println!("memcpy of the payload      {}", per_round(start.elapsed()));

    let start = Instant::now();
    let mut encoded = None;
    for _ in 0..ROUNDS {
        encoded = Some(encode_frame(&message)?);
    }
    println!("encode_frame (head only)   {}", per_round(start.elapsed()));

    let encoded = encoded.ok_or("no frame")?;
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&encoded.head);
    wire.extend_from_slice(&encoded.payload);
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let mut buf = wire.clone(); // the copy a socket read would make
        match decode_frame(&mut buf)? {
            Some(Decoded::Message(m)) => drop(std::hint::black_box(m)),
            other => return Err(format!("decoded {other:?}").into()),
        }
    }
    println!("copy + decode_frame        {}", per_round(start.elapsed()));

    // Through a pipe: raw bytes versus whole messages.
    let (mut a, mut b) = tokio::io::duplex(1 << 20);
    let len = wire.len();
    let reader = tokio::spawn(async move {
        let mut sink = vec![0u8; len];
        for _ in 0..ROUNDS {
            b.read_exact(&mut sink).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let start = Instant::now();
    for _ in 0..ROUNDS {
        a.write_all(&wire).await?;
    }
    reader.await??;
    println!("raw pipe write_all         {}", per_round(start.elapsed()));

    let (a, b) = tokio::io::duplex(1 << 20);
    let listener = tokio::spawn(async move {
        let mut conn = Connection::new(b, Role::Listener);
        conn.read_message().await?;
        conn.write_message(&Message::Hello(hello())).await?;
        conn.write_message(&Message::Accept(Accept {
            version: PROTOCOL_VERSION,
        }))
        .await?;
        for _ in 0..ROUNDS {
            conn.read_message().await?;
        }
        Ok::<_, ProtocolError>(())
    });
    let mut conn = Connection::new(a, Role::Caller);
    conn.write_message(&Message::Hello(hello())).await?;
    conn.read_message().await?;
    conn.read_message().await?;
    let payload = video.payload.clone();
    let start = Instant::now();
    for seq in 1..=u64::from(ROUNDS) {
        let frame = Video {
            seq,
            payload: payload.clone(),
            ..video.clone()
        };
        conn.write_message(&Message::Video(frame)).await?;
    }
    listener.await??;
    println!("Connection write+read      {}", per_round(start.elapsed()));
    Ok(())
}

fn hello() -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        software_name: "timing".into(),
        software_version: "0".into(),
        display_name: String::new(),
        receive: Receive {
            codecs: vec![PixelFormat::Rgb24],
            max_width: 1920,
            max_height: 1080,
            audio: vec![],
        },
    }
}
