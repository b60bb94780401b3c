//! The protocol handshake that follows TLS: hellos both ways, then the
//! listener's acceptance, and what the hellos settle about the video we send.
//!
//! The rules (who speaks first, what may arrive before accept, the hello
//! timeout) are the state machine's ([`super::state`]); this file does the
//! I/O for it. The caller counts itself connected only when the Accept
//! arrives: with TLS 1.3 that first read is also where a listener's refusal
//! of our certificate shows up, so `map_io` turns it into a clear error.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::state::{Action, CallMachine, Event, Outcome};
use super::CallError;
use crate::protocol::limits::{MAX_HEIGHT, MAX_WIDTH};
use crate::protocol::{
    AudioFormat, Connection, Hello, Message, PixelFormat, ProtocolError, Receive, PROTOCOL_VERSION,
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
            audio: AudioFormat::ALL.to_vec(),
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

/// The smallest `max_width` and `max_height` of a peer we send H.264 to: a
/// picture scaled down to fit must keep at least one macroblock
/// ([`crate::media::MIN_H264_SIDE`]) a side even at a 4:1 aspect ratio.
pub const MIN_H264_RECEIVER: u32 = 64;

/// What we send, as the peer's hello allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendPlan {
    /// The format asked for on the command line if the peer takes it, else
    /// (when a compressed one was asked for) the first compressed format the
    /// peer lists, else the first format the peer lists that we know; `None`
    /// when the peer takes none of ours (its list may be empty: it only
    /// sends). Then we send no video, and the call goes on one way. H.264 is
    /// used only when the peer takes pictures of at least
    /// [`MIN_H264_RECEIVER`] pixels a side.
    pub format: Option<PixelFormat>,
    /// The largest picture the peer takes (its hello's limits, capped at the
    /// protocol's); larger pictures are scaled down to fit, keeping their shape.
    pub max_width: u32,
    pub max_height: u32,
    /// The audio format we send: Opus if the peer lists it (from version
    /// 4), else none and the call is video only.
    pub audio: Option<AudioFormat>,
}

impl SendPlan {
    /// The plan for a peer that takes `receive`, when we would like to send `wanted`.
    pub fn for_peer(wanted: PixelFormat, receive: &Receive) -> SendPlan {
        let usable = |format: &PixelFormat| {
            *format != PixelFormat::H264
                || (receive.max_width >= MIN_H264_RECEIVER
                    && receive.max_height >= MIN_H264_RECEIVER)
        };
        let listed = || receive.codecs.iter().copied().filter(usable);
        let format = if listed().any(|format| format == wanted) {
            Some(wanted)
        } else {
            let compressed = listed().find(|format| format.is_compressed());
            compressed
                .filter(|_| wanted.is_compressed())
                .or_else(|| listed().next())
        };
        SendPlan {
            format,
            max_width: receive.max_width.clamp(1, MAX_WIDTH),
            max_height: receive.max_height.clamp(1, MAX_HEIGHT),
            audio: receive.audio.first().copied(),
        }
    }
}

/// Runs the hello/accept exchange on `conn` by the rules of `machine`
/// (see [`super::state`]): writes what it says to send, feeds it what
/// arrives and the time, until it says the call is connected (returned with
/// the machine, now live) or over (the error; the caller says goodbye).
pub async fn shake_hands<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    mut machine: CallMachine,
    map_io: impl Fn(std::io::Error) -> CallError,
) -> Result<(PeerIntro, CallMachine), CallError> {
    loop {
        while let Some(action) = machine.poll_action() {
            match action {
                Action::Send(message) => conn.write_message(&message).await?,
                Action::Connected { intro, .. } => return Ok((intro, machine)),
                Action::End { outcome, .. } => {
                    return Err(match outcome {
                        Outcome::Failed(e) => e,
                        Outcome::Ended(reason) => CallError::Internal(format!(
                            "the call ended during the handshake: {reason}"
                        )),
                    })
                }
                // Only a live call has a camera to show, a round trip to
                // measure, video to make a keyframe of or a link worth
                // redialling.
                Action::PeerCamera(_)
                | Action::PeerMicrophone(_)
                | Action::RoundTrip { .. }
                | Action::MakeKeyframe
                | Action::Reconnect { .. } => {}
            }
        }
        let Some(deadline) = machine.next_deadline() else {
            return Err(CallError::Internal(
                "the handshake ended without an outcome".into(),
            ));
        };
        // tokio's clock, so paused-time tests run the hello timeout at once.
        let event = match tokio::time::timeout_at(deadline.into(), read(conn, &map_io)).await {
            Ok(message) => Event::Received(message?),
            Err(_) => Event::Tick,
        };
        machine.handle(now(), event);
    }
}

/// The time the call's state machine is given: tokio's clock (so paused
/// time in tests moves it too), as a std `Instant`.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
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
    fn a_peer_without_h264_gets_another_compressed_format() {
        let mut peer = local_hello("x").receive;
        let plan = |peer: &Receive, wanted| SendPlan::for_peer(wanted, peer).format;
        assert_eq!(plan(&peer, PixelFormat::H264), Some(PixelFormat::H264));
        // A version 2 vchat lists raw first; we still send JPEG.
        peer.codecs = vec![PixelFormat::Rgb24, PixelFormat::I420, PixelFormat::Jpeg];
        assert_eq!(plan(&peer, PixelFormat::H264), Some(PixelFormat::Jpeg));
        // Asked for raw, the peer's first listed raw-or-not format.
        peer.codecs = vec![PixelFormat::H264, PixelFormat::I420];
        assert_eq!(plan(&peer, PixelFormat::Rgb24), Some(PixelFormat::H264));
        // Too small a receiver for H.264 macroblocks.
        peer.max_height = 32;
        assert_eq!(plan(&peer, PixelFormat::H264), Some(PixelFormat::I420));
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
