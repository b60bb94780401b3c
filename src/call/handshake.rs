//! The protocol handshake that follows TLS: hellos both ways, then the
//! listener's acceptance, and what the hellos settle about the video we send.
//!
//! The caller speaks first and counts itself connected only when the Accept
//! arrives: with TLS 1.3 that first read is also where a listener's refusal
//! of our certificate shows up, so it is mapped to a clear error here.
//! Between the listener's hello and its accept the caller takes what
//! PROTOCOL.md allows there (ping, pong, camera): a listener may wait for its
//! user before accepting, and keeps the link alive meanwhile.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::CallError;
use crate::protocol::limits::{MAX_HEIGHT, MAX_WIDTH};
use crate::protocol::{
    Accept, Connection, Hello, Message, PingMeter, PixelFormat, ProtocolError, Receive,
    PROTOCOL_VERSION,
};

pub use crate::protocol::limits::HELLO_TIMEOUT;

/// Our hello: we receive every format we know, up to the protocol's largest size.
pub fn local_hello(display_name: &str) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        software_name: "vchat".into(),
        software_version: env!("CARGO_PKG_VERSION").into(),
        display_name: display_name.into(),
        receive: Receive {
            codecs: PixelFormat::ALL.to_vec(),
            max_width: MAX_WIDTH,
            max_height: MAX_HEIGHT,
        },
    }
}

/// What the handshake learnt about the peer.
#[derive(Debug, Clone)]
pub struct PeerIntro {
    /// The peer's hello: its name and the video it takes.
    pub hello: Hello,
    /// The peer's camera as its last `camera` message before accept said
    /// (on until told otherwise).
    pub camera_on: bool,
}

/// What we send, as the peer's hello allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendPlan {
    /// The format asked for on the command line if the peer takes it, else
    /// the first format the peer lists that we know; `None` when the peer
    /// takes none of ours (its list may be empty: it only sends). Then we
    /// send no video, and the call goes on one way.
    pub format: Option<PixelFormat>,
    /// The largest picture the peer takes (its hello's limits, capped at the
    /// protocol's); larger pictures are scaled down to fit, keeping their shape.
    pub max_width: u32,
    pub max_height: u32,
}

impl SendPlan {
    /// The plan for a peer that takes `receive`, when we would like to send `wanted`.
    pub fn for_peer(wanted: PixelFormat, receive: &Receive) -> SendPlan {
        let format = if receive.codecs.contains(&wanted) {
            Some(wanted)
        } else {
            receive.codecs.first().copied()
        };
        SendPlan {
            format,
            max_width: receive.max_width.clamp(1, MAX_WIDTH),
            max_height: receive.max_height.clamp(1, MAX_HEIGHT),
        }
    }
}

/// The caller's side: send our hello, read theirs, wait for Accept.
pub async fn as_caller<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    hello: Hello,
    map_io: impl Fn(std::io::Error) -> CallError,
) -> Result<PeerIntro, CallError> {
    let exchange = async {
        conn.write_message(&Message::Hello(hello)).await?;
        let peer_hello = match read(conn, &map_io).await? {
            Message::Hello(h) => h,
            Message::Bye(bye) => return Err(CallError::PeerEnded(bye)),
            other => return Err(unexpected("hello", &other)),
        };
        let mut camera_on = true;
        let mut pings = PingMeter::new();
        loop {
            match read(conn, &map_io).await? {
                Message::Accept(Accept { .. }) => {
                    return Ok(PeerIntro {
                        hello: peer_hello,
                        camera_on,
                    })
                }
                Message::Bye(bye) => return Err(CallError::PeerEnded(bye)),
                // Answered at once, not queued: a flood of pings before
                // accept costs the peer as much as it costs us.
                Message::Ping { nonce } => {
                    pings.on_ping(Instant::now())?;
                    conn.write_message(&Message::Pong { nonce }).await?
                }
                Message::Pong { .. } => {}
                Message::Camera { on } => camera_on = on,
                // The session refuses a second hello and early video before
                // they get here; anything else is out of order all the same.
                other => return Err(unexpected("accept", &other)),
            }
        }
    };
    tokio::time::timeout(HELLO_TIMEOUT, exchange)
        .await
        .map_err(|_| CallError::HelloTimeout(HELLO_TIMEOUT))?
}

/// The listener's side: read the caller's hello, answer with ours and Accept.
pub async fn as_listener<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    hello: Hello,
    map_io: impl Fn(std::io::Error) -> CallError,
) -> Result<PeerIntro, CallError> {
    let exchange = async {
        let peer_hello = match read(conn, &map_io).await? {
            Message::Hello(h) => h,
            Message::Bye(bye) => return Err(CallError::PeerEnded(bye)),
            other => return Err(unexpected("hello", &other)),
        };
        let version = hello.version.min(peer_hello.version);
        conn.write_message(&Message::Hello(hello)).await?;
        conn.write_message(&Message::Accept(Accept { version }))
            .await?;
        Ok(PeerIntro {
            hello: peer_hello,
            camera_on: true,
        })
    };
    tokio::time::timeout(HELLO_TIMEOUT, exchange)
        .await
        .map_err(|_| CallError::HelloTimeout(HELLO_TIMEOUT))?
}

async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    map_io: &impl Fn(std::io::Error) -> CallError,
) -> Result<Message, CallError> {
    match conn.read_message().await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(CallError::ClosedDuringHandshake),
        Err(ProtocolError::Io(e)) => Err(map_io(e)),
        Err(e) => Err(CallError::Protocol(e)),
    }
}

fn unexpected(wanted: &str, got: &Message) -> CallError {
    CallError::UnexpectedMessage {
        wanted: wanted.to_owned(),
        got: got.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_format_prefers_ours_then_the_peers_first_then_none() {
        let mut peer = local_hello("x").receive;
        let plan = |peer: &Receive| SendPlan::for_peer(PixelFormat::Jpeg, peer).format;
        assert_eq!(plan(&peer), Some(PixelFormat::Jpeg));
        peer.codecs = vec![PixelFormat::I420];
        assert_eq!(plan(&peer), Some(PixelFormat::I420));
        peer.codecs.clear();
        assert_eq!(plan(&peer), None);
    }

    #[test]
    fn send_limits_are_the_peers_within_the_protocols() {
        let mut peer = local_hello("x").receive;
        peer.max_width = 639;
        peer.max_height = 100_000;
        let plan = SendPlan::for_peer(PixelFormat::Jpeg, &peer);
        assert_eq!((plan.max_width, plan.max_height), (639, MAX_HEIGHT));
    }
}
