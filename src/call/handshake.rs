//! The protocol handshake that follows TLS: hellos both ways, then the
//! listener's acceptance, and the choice of what we send.
//!
//! The caller speaks first and counts itself connected only when the Accept
//! arrives: with TLS 1.3 that first read is also where a listener's refusal
//! of our certificate shows up, so it is mapped to a clear error here.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::CallError;
use crate::protocol::limits::{MAX_HEIGHT, MAX_WIDTH};
use crate::protocol::{
    Accept, Connection, Hello, Message, PixelFormat, ProtocolError, Receive, PROTOCOL_VERSION,
};

/// How long the hello/accept exchange may take once TLS is up. The peer's
/// program answers at once; this only guards against a peer that completes
/// TLS and then stalls.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What we send: the format asked for on the command line if the peer takes
/// it, else the first format the peer lists (all of ours can be produced
/// from any source).
pub fn choose_send_format(wanted: PixelFormat, peer: &Receive) -> Result<PixelFormat, CallError> {
    if peer.codecs.contains(&wanted) {
        return Ok(wanted);
    }
    peer.codecs
        .first()
        .copied()
        .ok_or_else(|| CallError::NoCommonFormat {
            wanted,
            offered: String::new(),
        })
}

/// The caller's side: send our hello, read theirs, wait for Accept.
pub async fn as_caller<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    hello: Hello,
    map_io: impl Fn(std::io::Error) -> CallError,
) -> Result<Hello, CallError> {
    let exchange = async {
        conn.write_message(&Message::Hello(hello)).await?;
        let peer_hello = match read(conn, &map_io).await? {
            Message::Hello(h) => h,
            Message::Bye(bye) => return Err(CallError::PeerEnded(bye)),
            other => return Err(unexpected("hello", &other)),
        };
        match read(conn, &map_io).await? {
            Message::Accept(Accept { .. }) => Ok(peer_hello),
            Message::Bye(bye) => Err(CallError::PeerEnded(bye)),
            other => Err(unexpected("accept", &other)),
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
) -> Result<Hello, CallError> {
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
        Ok(peer_hello)
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
    fn send_format_prefers_ours_then_the_peers_first() {
        let mut peer = local_hello("x").receive;
        assert_eq!(
            choose_send_format(PixelFormat::Jpeg, &peer).unwrap(),
            PixelFormat::Jpeg
        );
        peer.codecs = vec![PixelFormat::I420];
        assert_eq!(
            choose_send_format(PixelFormat::Jpeg, &peer).unwrap(),
            PixelFormat::I420
        );
        peer.codecs.clear();
        assert!(choose_send_format(PixelFormat::Jpeg, &peer).is_err());
    }
}
