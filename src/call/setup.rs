//! From an authenticated stream to a running call, the same for `listen`,
//! `call`, `demo` and `bench`: the hello/accept handshake, what it settles
//! about the video we send, then the pipeline.
//!
//! A handshake that fails because of the peer (a bad or late hello, a wrong
//! first message, an oversized frame) still ends the way PROTOCOL.md asks:
//! a `bye` naming the problem, then TLS close_notify. Only a connection that
//! is already gone ends without one.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info, warn};

use super::handshake::{self, PeerIntro, SendPlan};
use super::link::VideoTakenHook;
use super::pipeline::{self, CallSummary, PipelineConfig, Relink};
use super::state::{CallMachine, MachineConfig};
use super::{CallError, EndReason};
use crate::media::FrameSource;
use crate::protocol::{Bye, ByeReason, Connection, Hello, PixelFormat, Role};
use crate::ui::{UiCommand, UiHandle};

/// How long a goodbye after a failed handshake may take: the peer may have
/// stopped reading, and we must not hang on it.
const GOODBYE_TIMEOUT: Duration = crate::protocol::limits::CLOSE_TIMEOUT;

/// What this side brings to a call.
pub struct Plan {
    /// Our hello (display name, what we receive).
    pub hello: Hello,
    /// The format we would like to send (`--codec`).
    pub wanted: PixelFormat,
    /// How the pipeline runs.
    pub config: PipelineConfig,
    /// Told of each of our frames as the link takes it to send (`vchat
    /// bench` paces its unpaced source by it); none in a person's call.
    pub on_video_taken: Option<VideoTakenHook>,
}

/// Runs the handshake on `conn` (in the role it was made with), then the
/// call, until it ends. `map_io` turns the stream's I/O errors into ours
/// (e.g. to explain a TLS alert).
pub async fn handshake_and_run<S>(
    conn: Connection<S>,
    plan: Plan,
    map_io: impl Fn(std::io::Error) -> CallError,
    source: Box<dyn FrameSource>,
    ui: UiHandle,
    commands: UnboundedReceiver<UiCommand>,
) -> Result<CallSummary, CallError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    handshake_and_run_relinking(conn, plan, map_io, source, ui, commands, None).await
}

/// A call that survives a dropped link: `relink` gets a new connection to
/// the same peer (see [`Relink`]) for up to `window` after a drop.
pub struct Reconnect<S> {
    pub relink: Relink<S>,
    pub window: Duration,
}

/// [`handshake_and_run`], reconnecting through `reconnect` when the link
/// drops without a bye (none: the call ends then).
pub async fn handshake_and_run_relinking<S>(
    mut conn: Connection<S>,
    plan: Plan,
    map_io: impl Fn(std::io::Error) -> CallError,
    source: Box<dyn FrameSource>,
    ui: UiHandle,
    mut commands: UnboundedReceiver<UiCommand>,
    reconnect: Option<Reconnect<S>>,
) -> Result<CallSummary, CallError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = std::time::Instant::now();
    let role = conn.session().role();
    let (window, relink) = match reconnect {
        Some(r) if !r.window.is_zero() => (r.window, Some(r.relink)),
        _ => (Duration::ZERO, None),
    };
    let machine = CallMachine::new(
        MachineConfig {
            peer_timeout: plan.config.peer_timeout,
            reconnect_window: window,
            ..MachineConfig::new(role, plan.hello)
        },
        handshake::now(),
    );
    // Hanging up (window, Ctrl-C) is heard during the handshake too.
    let shaken = tokio::select! {
        shaken = handshake::shake_hands(&mut conn, machine, map_io) => Ok(shaken),
        reason = stop_requested(&mut commands) => Err(reason),
    };
    let (intro, machine) = match shaken {
        Ok(Ok(intro)) => intro,
        Ok(Err(e)) => {
            goodbye(&mut conn, e.bye()).await;
            return Err(e);
        }
        Err(reason) => {
            info!("{reason} during the handshake");
            goodbye(&mut conn, Some(Bye::new(ByeReason::Hangup, ""))).await;
            let peer = plan.config.peer_name.clone();
            return Ok(CallSummary::empty(peer, reason, started.elapsed()));
        }
    };
    let name = &plan.config.peer_name;
    info!(peer = %name, display_name = %intro.hello.display_name, "connected to {name}");
    let send = SendPlan::for_peer(plan.wanted, &intro.hello.receive);
    match send.format {
        Some(format) if format != plan.wanted => {
            info!("{name} does not take {}; sending {format}", plan.wanted)
        }
        Some(_) => {}
        None => warn!(
            "{name} takes no video format vchat can send; the call goes on without our picture"
        ),
    }
    let display_name = intro.hello.display_name.clone();
    ui.update(|s| {
        s.peer_camera_on = intro.camera_on;
        s.peer_display_name = Some(display_name);
    });
    pipeline::run(
        conn,
        machine,
        source,
        plan.config,
        send,
        ui,
        commands,
        plan.on_video_taken,
        relink,
    )
    .await
}

/// The hello/accept handshake again on a new connection of a call that
/// dropped (PROTOCOL.md: a reconnect is a new connection like the first),
/// by a fresh machine's rules; the call's own machine learns the outcome
/// through `Event::Resumed`. A failed one ends with a goodbye as at first.
pub async fn shake_hands_again<S>(
    mut conn: Connection<S>,
    role: Role,
    hello: Hello,
    peer_timeout: Duration,
    map_io: impl Fn(std::io::Error) -> CallError,
) -> Result<(Connection<S>, PeerIntro), CallError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let machine = CallMachine::new(
        MachineConfig {
            peer_timeout,
            ..MachineConfig::new(role, hello)
        },
        handshake::now(),
    );
    match handshake::shake_hands(&mut conn, machine, map_io).await {
        Ok((intro, _)) => Ok((conn, intro)),
        Err(e) => {
            goodbye(&mut conn, e.bye()).await;
            Err(e)
        }
    }
}

/// Resolves when the person ends the call before it runs (waiting for a
/// peer, dialling, the handshake): the window's hang-up ("hung up") or
/// Ctrl-C ("interrupted"). A camera toggle this early is dropped (the call
/// starts with the camera on).
pub(super) async fn stop_requested(commands: &mut UnboundedReceiver<UiCommand>) -> EndReason {
    loop {
        match commands.recv().await {
            Some(UiCommand::HangUp) => return EndReason::HungUp,
            Some(UiCommand::Interrupt) => return EndReason::Interrupted,
            Some(UiCommand::SetCamera(_) | UiCommand::SetMicrophone(_)) => continue,
            None => std::future::pending::<()>().await,
        }
    }
}

/// Ends a connection whose handshake did not finish: `bye` when there is
/// one the peer should hear, then close_notify, then whatever the peer
/// still sends is read and dropped until it closes; bounded in time.
async fn goodbye<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Connection<S>, bye: Option<Bye>) {
    let ending = async {
        match bye {
            Some(bye) => conn.close(bye).await?,
            None => conn.shutdown().await?,
        }
        // Read on to the peer's close, discarding, so our close is not a
        // reset that could destroy the bye before the peer reads it.
        conn.discard_until_closed().await
    };
    match tokio::time::timeout(GOODBYE_TIMEOUT, ending).await {
        Ok(Ok(())) => debug!("said goodbye after a failed handshake"),
        Ok(Err(e)) => debug!("could not say goodbye after a failed handshake: {e}"),
        Err(_) => debug!("the peer did not take our goodbye within {GOODBYE_TIMEOUT:?}"),
    }
}
