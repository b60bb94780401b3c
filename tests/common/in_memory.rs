//! vchat's real call set-up and pipeline on one end of an in-memory pipe, as
//! the listener, with JPEG (or a chosen format) wanted and the given
//! pipeline settings; the test scripts the caller on the other end. For tests of the call's own
//! behaviour (hang-up, late frames) without sockets or processes.

use tokio::io::DuplexStream;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinHandle;
use vchat::call::handshake::local_hello;
use vchat::call::pipeline::{CallSummary, PipelineConfig};
use vchat::call::setup::{handshake_and_run, Plan};
use vchat::call::CallError;
use vchat::media::FrameSource;
use vchat::protocol::{Connection, Message, PixelFormat, Role};
use vchat::ui::{DisplayState, UiCommand, UiHandle};

/// A running in-memory call: vchat's task, its command channel (the
/// window's hang-up, Ctrl-C), and the caller's end, whose hello is sent.
pub struct InMemoryCall {
    pub call: JoinHandle<Result<CallSummary, CallError>>,
    pub commands: UnboundedSender<UiCommand>,
    pub peer: Connection<DuplexStream>,
}

/// Starts vchat as the listener with `config` and `source`; the caller's
/// hello ("Them") is already written.
pub async fn start(config: PipelineConfig, source: Box<dyn FrameSource>) -> InMemoryCall {
    start_sending(PixelFormat::Jpeg, config, source).await
}

/// As [`start`], with vchat sending `wanted`.
pub async fn start_sending(
    wanted: PixelFormat,
    config: PipelineConfig,
    source: Box<dyn FrameSource>,
) -> InMemoryCall {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let plan = Plan {
        hello: local_hello("Us"),
        wanted,
        config,
        on_video_taken: None,
    };
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let call = tokio::spawn(async move {
        let ui = UiHandle::headless(DisplayState::new("peer", ""));
        let conn = Connection::new(ours, Role::Listener);
        let map_io = |e: std::io::Error| CallError::ConnectionLost(e.to_string());
        handshake_and_run(conn, plan, map_io, source, ui, commands_rx).await
    });
    let mut peer = Connection::new(theirs, Role::Caller);
    peer.write_message(&Message::Hello(local_hello("Them")))
        .await
        .unwrap();
    InMemoryCall {
        call,
        commands,
        peer,
    }
}
