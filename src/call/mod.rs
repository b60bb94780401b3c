//! The call: identities, the pinned channel, the protocol and the media layer
//! joined into two people seeing each other live.
//!
//! - [`run`] holds the commands (`listen`, `call`, `demo`): set up the window
//!   or headless mode, connect, run the handshake, run the pipeline.
//! - [`setup`] takes an authenticated stream to a running call, the same
//!   for every command: handshake, what we send, pipeline.
//! - [`handshake`] is the hello/accept exchange after TLS.
//! - [`state`] is the call's rules as an I/O-free state machine: events in
//!   (messages, time, user actions, link lost), actions out.
//! - [`pipeline`] runs a connected call: it drives the state machine and
//!   stops every part through one cancellation token. Its parts: `link`
//!   (the tasks that own the stream's halves, writing by priority), `send`
//!   (capture and encode) and `receive` (decode, show, record).
//! - [`stats`] counts and reports.

pub mod clock;
pub mod handshake;
mod link;
pub mod pipeline;
pub mod rate;
mod receive;
pub mod run;
mod send;
pub mod setup;
pub mod state;
pub mod stats;
mod voice;
mod voice_path;

use std::fmt;
use std::time::Duration;

pub use link::VideoTakenHook;
pub use pipeline::{print_line, CallSummary, PEER_TIMEOUT, PING_INTERVAL};
pub use run::{call, demo, listen, CallOptions, CallRoute, Serve, TorAccess};
pub use voice::{AudioConfig, VoiceSnapshot, MAX_SYNC_DELAY, SYNC_AIM};
pub use voice_path::VoiceDatagrams;

use crate::identity::IdentityError;
use crate::media::MediaError;
use crate::net::NetError;
use crate::protocol::{Bye, ByeReason, ProtocolError};
use crate::ui::UiError;

/// Frames of received video that can be in use outside the reader's pool of
/// receive buffers at once: the newest-frame slot, the decoder's, the window's.
const FRAMES_OUTSIDE_THE_POOL: usize = 3;

/// The most received video a pinned peer in a call can make us hold,
/// however long it sends the largest frames: the reader's pool of receive
/// buffers plus the frames in use outside it, each at most a whole message.
/// SECURITY.md states this bound; `tests/call_attacks.rs` measures it.
pub const MAX_PEER_BUFFERED: usize = (crate::protocol::MAX_POOLED_BUFFERS
    + FRAMES_OUTSIDE_THE_POOL)
    * crate::protocol::MAX_MESSAGE_LEN;

/// Prints the summary of a call that ended normally on stdout (as JSON with
/// `--stats json`); on stderr when stdout is closed (e.g. piped into
/// `head`), never a panic.
pub fn print_summary(summary: &CallSummary, stats: Option<StatsFormat>) {
    let line = match stats {
        Some(StatsFormat::Json) => summary.to_json(),
        _ => summary.line(),
    };
    if print_line(&mut std::io::stdout(), &line).is_err() {
        let _ = print_line(&mut std::io::stderr(), &line);
    }
}

/// Prints the summary of a call (or a wait for one) that failed: who it was
/// with, how long it ran and why, on stdout like [`print_summary`] (as JSON
/// with `--stats json`, `"ok": false`), so every exit leaves one.
pub fn print_failure(
    peer: &str,
    error: &CallError,
    elapsed: std::time::Duration,
    stats: Option<StatsFormat>,
) {
    let line = failure_line(peer, error, elapsed, stats);
    if print_line(&mut std::io::stdout(), &line).is_err() {
        let _ = print_line(&mut std::io::stderr(), &line);
    }
}

fn failure_line(
    peer: &str,
    error: &CallError,
    elapsed: std::time::Duration,
    stats: Option<StatsFormat>,
) -> String {
    let secs = elapsed.as_secs_f64();
    match stats {
        Some(StatsFormat::Json) => serde_json::json!({
            "event": "summary",
            "ok": false,
            "peer": peer,
            "end": error.to_string(),
            "duration_s": (secs * 100.0).round() / 100.0,
        })
        .to_string(),
        _ => format!("call with {peer} failed after {secs:.1} s: {error}"),
    }
}

/// With `--stats json`, the last line of every run of `listen`, `call` or
/// `demo`, whether it ended normally or failed: `{"event": "end", "ok": ..,
/// "reason": ..}`, so a script reading the lines always learns how it ended.
pub fn print_end_event(stats: Option<StatsFormat>, outcome: Result<&CallSummary, &CallError>) {
    if stats != Some(StatsFormat::Json) {
        return;
    }
    let (ok, reason) = match outcome {
        Ok(summary) => (true, summary.end.to_string()),
        Err(e) => (false, e.to_string()),
    };
    let line = serde_json::json!({ "event": "end", "ok": ok, "reason": reason }).to_string();
    // A closed stdout has nobody to tell.
    let _ = print_line(&mut std::io::stdout(), &line);
}

/// `--stats` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    /// One JSON object per second on stdout.
    Json,
    /// One human-readable line per second on stderr.
    Text,
}

/// Why a call ended normally (exit status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// q, Esc or the window closed.
    HungUp,
    /// Ctrl-C.
    Interrupted,
    /// `--frames` frames were sent.
    FramesReached,
    /// `--duration` elapsed.
    DurationReached,
    /// The peer hung up, with its stated reason.
    PeerHungUp(String),
    /// Our standard output was closed (e.g. `--stats json | head -1`):
    /// whoever read the call's output is gone, so we hang up.
    OutputClosed,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::HungUp => f.write_str("hung up"),
            EndReason::Interrupted => f.write_str("interrupted"),
            EndReason::FramesReached => f.write_str("frame limit reached"),
            EndReason::DurationReached => f.write_str("duration reached"),
            EndReason::OutputClosed => f.write_str("standard output closed"),
            EndReason::PeerHungUp(why) if why.is_empty() => f.write_str("peer hung up"),
            EndReason::PeerHungUp(why) => write!(f, "peer hung up: {why}"),
        }
    }
}

/// Why a call could not start or did not end cleanly (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Tor(#[from] crate::net::tor::TorError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Ui(#[from] UiError),
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the peer sent video we cannot decode: {0}")]
    PeerSentBadVideo(MediaError),
    #[error("no word from the peer for {} s: it vanished (program killed, network down or machine asleep)", .0.as_secs())]
    PeerVanished(Duration),
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("the peer ended the call ({}){}", .0.reason.code(), if .0.text.is_empty() { String::new() } else { format!(": {}", .0.text) })]
    PeerEnded(Bye),
    #[error("the peer closed the connection during the handshake")]
    ClosedDuringHandshake,
    #[error("the peer did not complete the vchat handshake within {0:?}")]
    HelloTimeout(Duration),
    #[error("expected the peer's {wanted}, got {got}")]
    UnexpectedMessage { wanted: String, got: &'static str },
    #[error("cannot record to {0}")]
    Record(String),
    #[error("the listener stopped before a peer connected")]
    ListenerClosed,
    #[error("{0}")]
    Internal(String),
}

impl CallError {
    /// The bye to send the peer for this failure, if the connection can still carry one.
    pub fn bye(&self) -> Option<Bye> {
        let text = |s: String| crate::protocol::bye_text(&s);
        match self {
            CallError::Protocol(e) if !e.is_connection_lost() => Some(e.bye()),
            CallError::PeerSentBadVideo(e) => {
                Some(Bye::new(ByeReason::ProtocolError, text(e.to_string())))
            }
            CallError::Media(_) | CallError::Internal(_) | CallError::Ui(_) => {
                Some(Bye::new(ByeReason::InternalError, text(self.to_string())))
            }
            CallError::UnexpectedMessage { .. } | CallError::HelloTimeout(_) => {
                Some(Bye::new(ByeReason::ProtocolError, text(self.to_string())))
            }
            // Best effort: a vanished peer may still read.
            CallError::PeerVanished(_) => Some(Bye::new(ByeReason::Other, text(self.to_string()))),
            // Gone (nothing can carry a bye), or the peer already said bye.
            CallError::Identity(_)
            | CallError::Net(_)
            | CallError::Tor(_)
            | CallError::Protocol(_)
            | CallError::ConnectionLost(_)
            | CallError::PeerEnded(_)
            | CallError::ClosedDuringHandshake
            | CallError::Record(_)
            | CallError::ListenerClosed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_failure_summary_names_the_peer_the_time_and_the_cause() {
        let error = CallError::ListenerClosed;
        let text = failure_line("bob", &error, Duration::from_millis(2340), None);
        assert_eq!(text, format!("call with bob failed after 2.3 s: {error}"));
        let json = failure_line(
            "bob",
            &error,
            Duration::from_millis(2346),
            Some(StatsFormat::Json),
        );
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["event"], "summary");
        assert_eq!(json["ok"], false);
        assert_eq!(json["peer"], "bob");
        assert_eq!(json["end"], error.to_string());
        assert_eq!(json["duration_s"], 2.35);
    }
}
