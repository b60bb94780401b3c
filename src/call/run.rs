//! `vchat listen`, `vchat call` and `vchat demo`: from command-line options
//! to a running call, with the window on the main thread (winit requires it)
//! and the network on tokio threads, or headless.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::handshake::local_hello;
use super::pipeline::Relink;
use super::pipeline::{CallSummary, PipelineConfig, DEFAULT_MAX_LATENCY};
use super::setup::{
    handshake_and_run, handshake_and_run_relinking, shake_hands_again, stop_requested, Plan,
    Reconnect,
};
use super::voice::AudioConfig;
use super::voice_path::VoiceDatagrams;
use super::{CallError, EndReason, StatsFormat, PEER_TIMEOUT};
use crate::identity::{peers, Identity, IdentityError, PinnedPeer};
use crate::media::audio::{open_audio_source, AudioSourceSpec, SpeakerChoice};
use crate::media::{open_source, Fps, FrameSource, Quality, Size, SourceSpec};
use crate::net::tor::{start_tor, TorControl};
use crate::net::{
    classify, dial_via, parse_target, Listener, ListenerOptions, NetError, PinSet, Route,
    SecureStream, HANDSHAKE_TIMEOUT,
};
use crate::protocol::limits::MAX_DISPLAY_NAME_LEN;
use crate::protocol::{Bye, ByeReason, Connection, PixelFormat, Role};
use crate::ui::{CallState, DisplayState, UiCommand, UiHandle, WindowLoop};

/// The options every command that sends video shares.
#[derive(Debug, Clone, clap::Args)]
pub struct CallOptions {
    /// Video source: camera, camera:N, test (a synthetic pattern), flash (a
    /// white frame every whole second, with --audio-source beep for lip
    /// sync) or FILE.y4m.
    /// Default: camera (the demo: the camera if there is one, else test).
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<SourceSpec>,
    /// Frame size to capture and send, WxH.
    #[arg(long, default_value = "640x480", value_name = "WxH")]
    pub size: Size,
    /// Frames per second to capture.
    #[arg(long, default_value = "30", value_name = "N")]
    pub fps: Fps,
    /// What to send: h264 (a video codec: a tenth of JPEG's bytes or less),
    /// jpeg, raw (RGB24) or i420 (raw 4:2:0, half of raw's bytes). A peer
    /// that does not take it gets another compressed format it takes.
    #[arg(long, default_value = "h264", value_name = "CODEC")]
    pub codec: PixelFormat,
    /// JPEG quality, 1-100.
    #[arg(long, default_value = "80", value_name = "Q")]
    pub quality: Quality,
    /// Name shown to the peer (default: the name in your certificate); the
    /// rule of `vchat keygen --name` applies.
    #[arg(long, value_parser = crate::identity::parse_display_name)]
    pub name: Option<String>,
    /// No window: for servers, scripts and tests.
    #[arg(long)]
    pub headless: bool,
    /// Write the video you receive to a YUV4MPEG2 file, each picture as it
    /// goes up (its FRAME line names the sample of --record-audio's WAV
    /// playing then: `FRAME XAUDIO=N`).
    #[arg(long, value_name = "FILE.y4m")]
    pub record: Option<PathBuf>,
    /// Replace the --record file if it exists.
    #[arg(long, requires = "record")]
    pub force: bool,
    /// Hang up after sending N frames (at least 1).
    #[arg(long, value_name = "N", value_parser = |n: &str| match n.parse::<u64>() {
        // 0 would mean "hang up before the first frame", which never triggers.
        Ok(0) => Err("--frames must be at least 1; to run until you hang up, leave it out".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{n:?} is not a number of frames ({e})")),
    })]
    pub frames: Option<u64>,
    /// Hang up after SECS seconds of call.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print statistics every second: json (stdout) or text (stderr).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub stats: Option<StatsFormat>,
    /// When the connection drops without a goodbye, the caller redials (and
    /// the listener waits for the same peer) for up to SECS seconds; 0 ends
    /// the call at once.
    #[arg(long, default_value = "30", value_name = "SECS")]
    pub reconnect: u64,
    /// The most a frame of ours may age between capture and being sent:
    /// older ones are dropped (and counted) instead of sent late; an H.264
    /// frame the next ones stand on goes late rather than cost a keyframe,
    /// and the next pictures wait for the link to have room. The
    /// default, 400 ms, is ITU-T G.114's limit for one-way delay in
    /// conversation; on top of it come the link's own delay and decoding.
    #[arg(long, default_value_t = DEFAULT_MAX_LATENCY.as_millis() as u64, value_name = "MS", value_parser = parse_max_latency)]
    pub max_latency: u64,
    /// The most our video may use, in kbit/s (for metered links): H.264
    /// never aims above it. Raw and JPEG have no bitrate to steer.
    #[arg(long, value_name = "KBIT/S", value_parser = parse_max_bitrate)]
    pub max_bitrate: Option<u32>,
    /// Where your voice comes from: mic (the default microphone), mic:N,
    /// tone:HZ (a test tone), beep (1 kHz at every whole second, with
    /// --source flash) or wav:FILE.wav (48 kHz, looped). Without a
    /// microphone you still join: the peer sees you and you hear them.
    #[arg(long, value_name = "SOURCE", conflicts_with_all = ["mic", "no_audio"])]
    pub audio_source: Option<AudioSourceSpec>,
    /// Microphone N of `vchat devices` (same as --audio-source mic:N).
    #[arg(long, value_name = "N", conflicts_with = "no_audio")]
    pub mic: Option<usize>,
    /// Speaker N of `vchat devices` for the peer's voice, or none (the
    /// peer's voice is still received, timed and recorded). Default: the
    /// system's default speaker; without one, the peer is not heard.
    #[arg(long, value_name = "N|none", conflicts_with = "no_audio", value_parser = parse_speaker)]
    pub speaker: Option<SpeakerChoice>,
    /// Join with the microphone muted (m in the window unmutes).
    #[arg(long, conflicts_with = "no_audio")]
    pub muted: bool,
    /// Do not cancel echo. By default, with a microphone and a speaker, what
    /// the speaker plays is taken out of what the microphone hears
    /// (WebRTC's AEC3), so the peer does not hear itself; headphones need
    /// none, and turning it off saves some CPU.
    #[arg(long, conflicts_with = "no_audio")]
    pub no_echo_cancel: bool,
    /// No audio either way: a video-only call.
    #[arg(long)]
    pub no_audio: bool,
    /// Keep voice inside the TLS stream. By default, on a direct route,
    /// voice goes by UDP beside it (to and from the listen port's number,
    /// encrypted with keys from the call's TLS session) whenever that path
    /// works both ways, so a lost packet does not hold up the ones behind
    /// it; through Tor or a proxy it always stays in the stream.
    #[arg(long)]
    pub no_udp: bool,
    /// Write the peer's voice, as you heard it, to a WAV file (48 kHz mono).
    #[arg(long, value_name = "FILE.wav", conflicts_with = "no_audio")]
    pub record_audio: Option<PathBuf>,
    /// Our audio, worked out once (a microphone tried) and kept for every call.
    #[arg(skip)]
    resolved_audio: Arc<OnceLock<AudioConfig>>,
}

/// `--speaker`: a device number of `vchat devices`, or `none`.
fn parse_speaker(text: &str) -> Result<SpeakerChoice, String> {
    match text {
        "none" => Ok(SpeakerChoice::None),
        n => n.parse().map(SpeakerChoice::Index).map_err(|_| {
            format!("{text:?} is neither a speaker number (see `vchat devices`) nor none")
        }),
    }
}

/// `--max-bitrate`: from 50 kbit/s (a small picture still moves) to 100
/// Mbit/s, in bits per second.
fn parse_max_bitrate(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(kbits) if (50..=100_000).contains(&kbits) => Ok(kbits * 1000),
        Ok(kbits) => Err(format!(
            "{kbits} kbit/s is outside 50-100000: below 50 kbit/s no picture moves"
        )),
        Err(e) => Err(format!("{text:?} is not a whole number of kbit/s ({e})")),
    }
}

/// `--max-latency`: at least one frame time at the slowest camera rate that
/// makes sense (100 ms), at most a minute.
fn parse_max_latency(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(ms) if (100..=60_000).contains(&ms) => Ok(ms),
        Ok(ms) => Err(format!(
            "{ms} ms is outside 100-60000: below 100 ms a camera frame would be late before it is sent"
        )),
        Err(e) => Err(format!("{text:?} is not a number of milliseconds ({e})")),
    }
}

impl CallOptions {
    fn duration(&self) -> Result<Option<Duration>, CallError> {
        match self.duration {
            None => Ok(None),
            Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
                Ok(Some(Duration::from_secs_f64(secs)))
            }
            Some(secs) => Err(CallError::Internal(format!(
                "--duration {secs} is not a positive number of seconds"
            ))),
        }
    }

    /// Checks what can be checked before any connection: the duration and
    /// the recording's file (its folder exists and takes a file, and it
    /// replaces no file without `--force`), so a call is not lost to a
    /// typo found only when the first frame arrives.
    fn check(&self) -> Result<(), CallError> {
        self.duration()?;
        if let Some(path) = &self.record {
            check_record_target(path, self.force)?;
        }
        if let Some(path) = &self.record_audio {
            check_record_target(path, self.force)?;
        }
        self.audio()?;
        Ok(())
    }

    /// Our audio for calls. A source named on the command line must work;
    /// the default microphone may be missing: then we join without voice
    /// (the peer still sees us, and we still hear them) and say so.
    fn audio(&self) -> Result<AudioConfig, CallError> {
        if let Some(resolved) = self.resolved_audio.get() {
            return Ok(resolved.clone());
        }
        let config = if self.no_audio {
            AudioConfig::off()
        } else {
            let asked = match (&self.audio_source, self.mic) {
                (Some(spec), _) => Some(spec.clone()),
                (None, Some(index)) => Some(AudioSourceSpec::Mic { index: Some(index) }),
                (None, None) => None,
            };
            let spec = asked.clone().unwrap_or_default();
            // Opened once to find out, then let go: each call opens its own.
            let source = match open_audio_source(&spec) {
                Ok(source) => {
                    info!("audio source: {}", source.describe());
                    Some(spec)
                }
                Err(e) if asked.is_none() => {
                    warn!("no microphone ({e}); joining without sending voice (see `vchat devices`, or --audio-source)");
                    None
                }
                Err(e) => return Err(CallError::Media(e)),
            };
            AudioConfig {
                source,
                receive: true,
                speaker: self.speaker.unwrap_or(SpeakerChoice::Default),
                record: self.record_audio.clone(),
                muted: self.muted,
                echo_cancel: !self.no_echo_cancel,
            }
        };
        Ok(self.resolved_audio.get_or_init(|| config).clone())
    }

    /// What this side brings to a call with `peer_name`, introducing
    /// itself as `display_name`.
    fn plan(&self, display_name: &str, peer_name: &str) -> Result<Plan, CallError> {
        let mut hello = local_hello(display_name);
        if !self.audio()?.receive {
            // We take no voice: the peer sends none.
            hello.receive.audio.clear();
        }
        Ok(Plan {
            hello,
            wanted: self.codec,
            config: self.pipeline(peer_name)?,
            on_video_taken: None,
        })
    }

    fn pipeline(&self, peer_name: &str) -> Result<PipelineConfig, CallError> {
        Ok(PipelineConfig {
            quality: self.quality,
            fps: self.fps,
            record: self.record.clone(),
            max_frames: self.frames,
            duration: self.duration()?,
            stats: self.stats,
            peer_timeout: PEER_TIMEOUT,
            peer_name: peer_name.to_owned(),
            max_latency: Duration::from_millis(self.max_latency),
            max_bitrate: self.max_bitrate,
            audio: self.audio()?,
            // Set by `listen` and `call`, which know the route.
            voice_datagrams: VoiceDatagrams::Off,
        })
    }

    fn reconnect_window(&self) -> Duration {
        Duration::from_secs(self.reconnect)
    }

    fn open_source(&self, default: &SourceSpec) -> Result<Box<dyn FrameSource>, CallError> {
        let spec = self.source.as_ref().unwrap_or(default);
        let source = open_source(spec, self.size, self.fps, self.codec)?;
        info!("video source: {}", source.describe());
        Ok(source)
    }
}

/// Whether `vchat listen` takes one call or keeps serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// One call, then exit (`--once`, for scripts).
    Once,
    /// Call after call, one at a time, until Ctrl-C or the window closes.
    UntilStopped,
}

/// `vchat listen`: waits for one of `peer_specs` and runs the call; with
/// [`Serve::UntilStopped`], waits again after each call. `on_call_end` gets
/// the summary of every call that ended normally while serving continues
/// (the returned summary is the last one, or why serving stopped).
pub fn listen(
    dir: &Path,
    bind: &str,
    onion: Option<TorAccess>,
    peer_specs: &[String],
    options: &CallOptions,
    serve: Serve,
    on_call_end: impl Fn(&CallSummary) + Send + 'static,
) -> Result<CallSummary, CallError> {
    let identity = Identity::load(dir)?;
    // Read again for every connection, so `vchat untrust` takes effect at once.
    let pins = PinSet::live(dir, peer_specs)?;
    options.check()?;
    let default_source = SourceSpec::Camera { index: 0 };
    // Opened now, so a missing camera is reported before anyone calls.
    let first_source = options.open_source(&default_source)?;
    let name = display_name(options, &identity);
    let waiting_for: Vec<String> = pins.peers().iter().map(|p| p.name.clone()).collect();
    // The window says "waiting for Bob on ADDRESS" from these two.
    let state = DisplayState::new(&waiting_for.join(" or "), "");
    let bind = bind.to_owned();
    let dir = dir.to_owned();
    let options = options.clone();
    let window = open_window(options.headless, state)?;
    run_with_ui(window, "vchat".into(), move |ui, mut commands| async move {
        let mut listener =
            Listener::bind(&bind, &identity, pins, ListenerOptions::default()).await?;
        let addr = listener.local_addr();
        let voice_datagrams = match options.no_udp {
            true => VoiceDatagrams::Off,
            false => bind_voice_socket(addr),
        };
        // A stable line scripts and tests can wait for (the port may be 0 = any).
        // The addresses a peer can dial, never 0.0.0.0 or [::].
        let addresses: Vec<String> = crate::net::usable_addresses(addr)
            .iter()
            .map(ToString::to_string)
            .collect();
        eprintln!("vchat: listening on {}", addresses.join(", "));
        // Kept open for the listener's life: tor removes the service when
        // this connection closes.
        let _onion = match onion {
            Some(TorAccess::Running(control)) => {
                let mut tor = TorControl::connect(control).await?;
                publish_onion(&dir, &mut tor, addr).await?;
                (Some(tor), None)
            }
            Some(TorAccess::Start { torrc }) => {
                let mut tor = start_own_tor(&dir.join("tor"), torrc.as_deref(), &ui).await?;
                publish_onion(&dir, &mut tor.control, addr).await?;
                (None, Some(tor))
            }
            None => (None, None),
        };
        let busy_refusals = Arc::new(Semaphore::new(MAX_BUSY_REFUSALS));
        let reconnect_window = options.reconnect_window();
        let mut source = Some(first_source);
        let mut calls_served = 0u64;
        loop {
            ui.update(|s| {
                s.state = CallState::Waiting(addresses.clone());
                s.peer_picture = None;
                s.peer_display_name = None;
            });
            info!("waiting for {}", waiting_for.join(" or "));
            let secure = tokio::select! {
                secure = listener.accept() => secure.ok_or(CallError::ListenerClosed)?,
                reason = stop_requested(&mut commands) => {
                    return Ok(not_connected(reason, calls_served));
                }
            };
            let call_started = Instant::now();
            let remote = secure.remote;
            let peer = secure.peer.clone();
            show_peer(&ui, &peer);
            ui.update(|s| s.state = CallState::Connecting);
            info!(peer = %peer.name, "call from {}", peer.name);
            let source = match source.take() {
                Some(source) => source,
                None => options.open_source(&default_source)?,
            };
            announce_spoken_code(&secure, Some(&ui));
            let conn = Connection::new(secure.stream, Role::Listener);
            let mut plan = options.plan(&name, &peer.name)?;
            plan.config.voice_datagrams = voice_datagrams.clone();
            // Each call after the first records to its own numbered file.
            if let (Some(path), true) = (&options.record, calls_served > 0) {
                let numbered = numbered_path(path, calls_served + 1);
                check_record_target(&numbered, options.force)?;
                plan.config.record = Some(numbered);
            }
            if let (Some(path), true) = (&options.record_audio, calls_served > 0) {
                let numbered = numbered_path(path, calls_served + 1);
                check_record_target(&numbered, options.force)?;
                plan.config.audio.record = Some(numbered);
            }
            let map_io = move |e| CallError::Net(classify(remote, e));
            // The call gets its own command channel, fed from the window's
            // while it runs, so the window's outlives it.
            let (call_commands, call_commands_rx) = mpsc::unbounded_channel();
            // The same peer calling again while the call waits for it is
            // the call coming back after a drop: that connection goes to the
            // call. At other times (the call is up) it is busy like anyone:
            // a redial that comes before we noticed the drop is retried.
            let (returns, returns_rx) = mpsc::channel(1);
            let waiting = Arc::new(AtomicBool::new(false));
            let reconnect = Reconnect {
                relink: listener_relink(
                    returns_rx,
                    waiting.clone(),
                    plan.hello.clone(),
                    plan.config.peer_timeout,
                ),
                window: reconnect_window,
            };
            let call = handshake_and_run_relinking(
                conn,
                plan,
                map_io,
                source,
                ui.clone(),
                call_commands_rx,
                Some(reconnect),
            );
            tokio::pin!(call);
            let result = loop {
                tokio::select! {
                    result = &mut call => break result,
                    // Anyone else who gets through meanwhile is told we are busy.
                    Some(other) = listener.accept() => {
                        let returning = !reconnect_window.is_zero()
                            && waiting.load(Ordering::Acquire)
                            && other.peer.fingerprint() == peer.fingerprint();
                        match returning {
                            true => {
                                info!(peer = %peer.name, "{} is back", peer.name);
                                if let Err(e) = returns.try_send(other) {
                                    refuse_busy(e.into_inner(), &busy_refusals);
                                }
                            }
                            false => refuse_busy(other, &busy_refusals),
                        }
                    }
                    Some(command) = commands.recv() => {
                        let _ = call_commands.send(command);
                    }
                }
            };
            calls_served += 1;
            let stop_serving = serve == Serve::Once
                || matches!(
                    &result,
                    Ok(CallSummary {
                        end: EndReason::Interrupted | EndReason::HungUp | EndReason::OutputClosed,
                        ..
                    })
                );
            if stop_serving {
                return result;
            }
            match result {
                Ok(summary) => on_call_end(&summary),
                Err(e) => {
                    eprintln!("vchat: the call with {} failed: {e}", peer.name);
                    super::print_failure(&peer.name, &e, call_started.elapsed(), options.stats);
                }
            }
        }
    })
}

/// The listener's UDP socket for voice datagrams (call/voice_path.rs),
/// on the TCP listener's address and port number: the one number a router
/// forwards, and the one a caller aims at. If it cannot be had, calls keep
/// voice in the TLS stream.
fn bind_voice_socket(addr: std::net::SocketAddr) -> VoiceDatagrams {
    match crate::net::bind_udp(addr) {
        Ok(socket) => {
            info!(
                "voice datagrams on UDP port {} (forward it beside TCP {} to carry voice by UDP)",
                addr.port(),
                addr.port()
            );
            VoiceDatagrams::Answer(Arc::new(socket))
        }
        Err(e) => {
            warn!(
                "cannot take UDP port {} for voice ({e}); voice goes in the TLS stream",
                addr.port()
            );
            VoiceDatagrams::Off
        }
    }
}

/// How `vchat call` reaches the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRoute {
    /// Straight there, or for an onion address through a tor that vchat
    /// starts for the call, with `torrc`'s lines included (never DNS).
    Direct { torrc: Option<PathBuf> },
    /// Through this SOCKS5 proxy (`--proxy`), names unresolved.
    Proxy(SocketAddr),
}

/// `vchat call`: dials `addr`, accepting only `peer_spec`, and runs the call.
pub fn call(
    dir: &Path,
    addr: &str,
    route: CallRoute,
    peer_spec: &str,
    options: &CallOptions,
) -> Result<CallSummary, CallError> {
    let target = parse_target(addr)?;
    // An onion address must never reach a DNS resolver: it goes to Tor.
    let own_tor = match &route {
        CallRoute::Direct { torrc } if is_onion(&target.host) => Some(torrc.clone()),
        _ => None,
    };
    let route = match route {
        CallRoute::Proxy(proxy) => Route::Socks5(proxy),
        // Replaced by the own tor's SOCKS port once it runs.
        CallRoute::Direct { .. } => Route::Direct,
    };
    let identity = Identity::load(dir)?;
    let peer = peers::resolve(dir, peer_spec)?;
    options.check()?;
    let source = options.open_source(&SourceSpec::Camera { index: 0 })?;
    let name = display_name(options, &identity);
    let state = DisplayState::new(&peer.name, &peer.fingerprint().short());
    let addr = addr.to_owned();
    let options = options.clone();
    let title = format!("vchat - {}", peer.name);
    let window = open_window(options.headless, state)?;
    let identity = Arc::new(identity);
    let tor_dir = dir.join(CALLER_TOR_DIR);
    run_with_ui(window, title, move |ui, mut commands| async move {
        // Kept for the whole call: redials go through it too.
        let mut _tor = None;
        let route = match own_tor {
            Some(torrc) => {
                let started = Instant::now();
                let tor = tokio::select! {
                    tor = start_own_tor(&tor_dir, torrc.as_deref(), &ui) => tor?,
                    reason = stop_requested(&mut commands) => {
                        info!("gave up starting Tor: {reason}");
                        return Ok(CallSummary::empty(peer.name.clone(), reason, started.elapsed()));
                    }
                };
                ui.update(|s| {
                    s.progress = Some(format!(
                        "Reaching {}'s onion service (can take 30 s)",
                        peer.name
                    ))
                });
                let socks = tor.socks;
                _tor = Some(tor);
                Route::Socks5(socks)
            }
            None => route,
        };
        let reconnect = Reconnect {
            relink: caller_relink(
                addr.clone(),
                route,
                identity.clone(),
                peer.clone(),
                local_hello(&name),
                PEER_TIMEOUT,
            ),
            window: options.reconnect_window(),
        };
        connect_and_run(
            &addr,
            route,
            &identity,
            &peer,
            &name,
            source,
            &options,
            ui,
            commands,
            Some(reconnect),
        )
        .await
    })
}

/// The caller's way back after a drop: wait the backoff, dial the same
/// address with the same identity and pin, shake hands again.
fn caller_relink(
    addr: String,
    route: Route,
    identity: Arc<Identity>,
    peer: PinnedPeer,
    hello: crate::protocol::Hello,
    peer_timeout: Duration,
) -> Relink<tokio_rustls::TlsStream<tokio::net::TcpStream>> {
    Box::new(move |attempt, after| {
        let (addr, identity, peer, hello) =
            (addr.clone(), identity.clone(), peer.clone(), hello.clone());
        Box::pin(async move {
            tokio::time::sleep(after).await;
            info!("redialling {addr} (attempt {attempt})");
            let secure = dial_patiently(&addr, route, &identity, &peer).await?;
            announce_spoken_code(&secure, None);
            let remote = secure.remote;
            let conn = Connection::new(secure.stream, Role::Caller);
            let map_io = move |e| CallError::Net(classify(remote, e));
            shake_hands_again(conn, Role::Caller, hello, peer_timeout, map_io).await
        })
    })
}

/// The listener's way back after a drop: the next connection from the same
/// peer (the listen loop hands them over), with the hello/accept again. No
/// backoff: the peer's redial sets the pace.
fn listener_relink(
    returns: mpsc::Receiver<SecureStream>,
    waiting: Arc<AtomicBool>,
    hello: crate::protocol::Hello,
    peer_timeout: Duration,
) -> Relink<tokio_rustls::TlsStream<tokio::net::TcpStream>> {
    let returns = Arc::new(tokio::sync::Mutex::new(returns));
    Box::new(move |_attempt, _after| {
        let (returns, waiting, hello) = (returns.clone(), waiting.clone(), hello.clone());
        Box::pin(async move {
            let mut returns = returns.lock().await;
            waiting.store(true, Ordering::Release);
            let secure = returns.recv().await;
            waiting.store(false, Ordering::Release);
            let secure = secure.ok_or(CallError::ListenerClosed)?;
            announce_spoken_code(&secure, None);
            let remote = secure.remote;
            let conn = Connection::new(secure.stream, Role::Listener);
            let map_io = move |e| CallError::Net(classify(remote, e));
            shake_hands_again(conn, Role::Listener, hello, peer_timeout, map_io).await
        })
    })
}

/// Dials `addr` and runs the call. Until the call is connected, Ctrl-C or
/// closing the window gives up at once, with a summary ("interrupted",
/// "hung up"), instead of waiting out the dial's timeouts.
#[allow(clippy::too_many_arguments)]
async fn connect_and_run(
    addr: &str,
    route: Route,
    identity: &Identity,
    peer: &PinnedPeer,
    name: &str,
    source: Box<dyn FrameSource>,
    options: &CallOptions,
    ui: UiHandle,
    mut commands: UnboundedReceiver<UiCommand>,
    reconnect: Option<Reconnect<tokio_rustls::TlsStream<tokio::net::TcpStream>>>,
) -> Result<CallSummary, CallError> {
    let started = Instant::now();
    // Ctrl-C is already ours (see `run_with_ui`): a script may interrupt
    // from this line on.
    info!("calling {} at {addr}", peer.name);
    let secure = tokio::select! {
        secure = dial_patiently(addr, route, identity, peer) => secure?,
        reason = stop_requested(&mut commands) => {
            info!("gave up calling {addr}: {reason}");
            return Ok(CallSummary::empty(peer.name.clone(), reason, started.elapsed()));
        }
    };
    announce_spoken_code(&secure, Some(&ui));
    let remote = secure.remote;
    let conn = Connection::new(secure.stream, Role::Caller);
    let mut plan = options.plan(name, &peer.name)?;
    // Through Tor or a proxy the listener's UDP port is out of reach.
    if matches!(route, Route::Direct) && !options.no_udp {
        plan.config.voice_datagrams = VoiceDatagrams::Dial;
    }
    let map_io = move |e| CallError::Net(classify(remote, e));
    handshake_and_run_relinking(conn, plan, map_io, source, ui, commands, reconnect).await
}

/// How long the demo runs when there is no display to close.
const HEADLESS_DEMO: Duration = Duration::from_secs(5);

/// `vchat demo`: two throwaway identities, both peers in this process over
/// loopback mutual TLS, one window showing both feeds.
pub fn demo(options: &CallOptions) -> Result<CallSummary, CallError> {
    options.check()?;
    let mut options = options.clone();
    let me = Identity::generate("You (demo)")?;
    let friend = Identity::generate("Friend (demo)")?;
    let my_source = match &options.source {
        Some(spec) => options.open_source(spec)?,
        None => match options.open_source(&SourceSpec::Camera { index: 0 }) {
            Ok(camera) => camera,
            Err(e) => {
                eprintln!("vchat demo: no usable camera ({e}); showing the test pattern instead");
                options.open_source(&SourceSpec::TestPattern)?
            }
        },
    };
    let friend_source = open_source(
        &SourceSpec::TestPattern,
        options.size,
        options.fps,
        options.codec,
    )?;

    let state = DisplayState::new("friend", &friend.certificate().fingerprint().short());
    let window = if options.headless {
        None
    } else {
        match WindowLoop::new(state) {
            Ok(window) => Some(window),
            Err(e) => {
                eprintln!(
                    "vchat demo: {e}\nvchat demo: running headless for {} s instead, printing stats",
                    HEADLESS_DEMO.as_secs()
                );
                options.headless = true;
                options.duration.get_or_insert(HEADLESS_DEMO.as_secs_f64());
                options.stats.get_or_insert(StatsFormat::Text);
                None
            }
        }
    };
    run_with_ui(
        window,
        "vchat demo".into(),
        move |ui, commands| async move {
            let my_pin = PinnedPeer {
                name: "you".into(),
                certificate: me.certificate().clone(),
            };
            let friend_pin = PinnedPeer {
                name: "friend".into(),
                certificate: friend.certificate().clone(),
            };
            let mut listener = Listener::bind(
                "127.0.0.1:0",
                &friend,
                PinSet::new(vec![my_pin]),
                ListenerOptions::default(),
            )
            .await?;
            let addr = listener.local_addr().to_string();
            let friend_options = CallOptions {
                record: None,
                stats: None,
                frames: None,
                ..options.clone()
            };
            let friend_side = tokio::spawn(async move {
                let secure = listener.accept().await.ok_or(CallError::ListenerClosed)?;
                let remote = secure.remote;
                let conn = Connection::new(secure.stream, Role::Listener);
                let plan = friend_options.plan("Friend (demo)", "you")?;
                let map_io = move |e| CallError::Net(classify(remote, e));
                let (_keep, no_commands) = mpsc::unbounded_channel();
                let headless = UiHandle::headless(DisplayState::new("you", ""));
                handshake_and_run(conn, plan, map_io, friend_source, headless, no_commands).await
            });
            let result = connect_and_run(
                &addr,
                Route::Direct,
                &me,
                &friend_pin,
                "You (demo)",
                my_source,
                &options,
                ui,
                commands,
                None,
            )
            .await;
            match friend_side.await {
                Ok(Ok(summary)) => info!("the friend's side: {}", summary.line()),
                Ok(Err(e)) => warn!("the friend's side: {e}"),
                Err(e) => warn!("the friend's side stopped: {e}"),
            }
            result
        },
    )
}

/// Runs `body` with the window on this (main) thread and the call on a tokio
/// runtime thread, or with no window at all.
fn run_with_ui<F, Fut>(
    window: Option<WindowLoop>,
    title: String,
    body: F,
) -> Result<CallSummary, CallError>
where
    F: FnOnce(UiHandle, UnboundedReceiver<UiCommand>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<CallSummary, CallError>> + Send,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vchat-net")
        .build()
        .map_err(|e| CallError::Internal(format!("cannot start the async runtime: {e}")))?;
    let (commands_tx, commands) = mpsc::unbounded_channel();
    forward_interrupts(&runtime, commands_tx.clone())?;
    let Some(window) = window else {
        let ui = UiHandle::headless(DisplayState::new("", ""));
        return runtime.block_on(body(ui, commands));
    };
    let handle = window.handle();
    let call = std::thread::Builder::new()
        .name("vchat-call".into())
        .spawn(move || {
            let result = runtime.block_on(body(handle.clone(), commands));
            handle.finish(match &result {
                Ok(summary) => summary.end_in_words(),
                Err(e) => e.to_string(),
            });
            result
        })
        .map_err(|e| CallError::Internal(format!("cannot start the call thread: {e}")))?;
    let shown = window.run(title, commands_tx);
    let result = call
        .join()
        .map_err(|_| CallError::Internal("the call thread panicked".into()))?;
    shown?;
    result
}

/// The window, unless `headless`; no display is an error that suggests `--headless`.
fn open_window(headless: bool, state: DisplayState) -> Result<Option<WindowLoop>, CallError> {
    if headless {
        return Ok(None);
    }
    Ok(Some(WindowLoop::new(state)?))
}

/// Forwards Ctrl-C into the call's command channel as
/// [`UiCommand::Interrupt`], for as long as the runtime runs. The handler
/// is installed before this returns, so from then on a Ctrl-C is never the
/// signal's default (death without a summary) and never lost: whichever
/// phase reads the commands next (waiting, dialling, the handshake, the
/// call) ends with "interrupted".
fn forward_interrupts(
    runtime: &tokio::runtime::Runtime,
    commands: UnboundedSender<UiCommand>,
) -> Result<(), CallError> {
    let _context = runtime.enter();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupts = signal(SignalKind::interrupt())
            .map_err(|e| CallError::Internal(format!("cannot listen for Ctrl-C: {e}")))?;
        runtime.spawn(async move {
            while interrupts.recv().await.is_some() {
                if commands.send(UiCommand::Interrupt).is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    runtime.spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if commands.send(UiCommand::Interrupt).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// The summary of a listener that stopped while waiting, after `served` calls.
fn not_connected(end: EndReason, served: u64) -> CallSummary {
    let peer = match served {
        0 => "nobody (no peer connected)".to_owned(),
        n => format!("nobody (waiting after {n} calls)"),
    };
    CallSummary::empty(peer, end, Duration::ZERO)
}

/// At most this many busy refusals run at once; connections beyond it are
/// closed without a word. Each holds only a TLS stream and a small drain
/// buffer, so the crowd a pinned peer can summon costs little memory.
const MAX_BUSY_REFUSALS: usize = 4;

/// How long a busy refusal waits for the caller to read our bye and close.
const BUSY_REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// While we are in a call, tell another pinned peer that gets through we
/// are busy: a `bye` right away (PROTOCOL.md allows it before any hello),
/// then close_notify. Whatever it sends meanwhile is read into one small
/// buffer and discarded, never parsed into messages, so a crowd of pinned
/// connections each sending a maximum-size frame costs a few kilobytes each,
/// not a frame each; and reading on until they close keeps our bye from
/// being destroyed by a reset. At most [`MAX_BUSY_REFUSALS`] at once.
fn refuse_busy(secure: SecureStream, slots: &Arc<Semaphore>) {
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        info!(peer = %secure.peer.name, "closed a second call: busy with {MAX_BUSY_REFUSALS} refusals already");
        return;
    };
    info!(peer = %secure.peer.name, "refusing a second call: busy");
    tokio::spawn(async move {
        let mut conn = Connection::new(secure.stream, Role::Listener);
        let _ = tokio::time::timeout(BUSY_REFUSAL_TIMEOUT, async {
            conn.close(Bye::new(ByeReason::Busy, "already in a call"))
                .await?;
            conn.discard_until_closed().await
        })
        .await;
        drop(slot);
    });
}

/// The identity folder's onion service key and address files.
const ONION_KEY_FILE: &str = "onion_key";
pub const ONION_ADDRESS_FILE: &str = "onion_address";
/// The port callers dial on the onion address.
const ONION_PORT: u16 = crate::net::DEFAULT_PORT;
/// How long publishing may take before vchat says it failed.
const ONION_PUBLISH_LIMIT: Duration = Duration::from_secs(120);

/// Which tor publishes a listener's onion service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorAccess {
    /// A running tor's control port (`--tor-control`).
    Running(SocketAddr),
    /// A tor vchat starts from PATH, with `--torrc`'s lines included.
    Start { torrc: Option<PathBuf> },
}

/// Publishes the listener at `local` as this identity's onion service
/// through `tor`, and waits until a directory holds it.
async fn publish_onion(
    dir: &Path,
    tor: &mut TorControl,
    local: SocketAddr,
) -> Result<(), CallError> {
    use crate::identity::write_atomically;
    let key_path = dir.join(ONION_KEY_FILE);
    let key = match std::fs::read_to_string(&key_path) {
        Ok(key) => Some(key.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(IdentityError::io("read", &key_path, e).into());
        }
    };
    // Onion traffic arrives from tor on this machine.
    let target = if local.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    };
    eprintln!("vchat: publishing onion service");
    let service = tor.add_onion(key.as_deref(), ONION_PORT, target).await?;
    if let Some(new_key) = &service.new_key {
        write_atomically(&key_path, format!("{new_key}\n").as_bytes(), 0o600)?;
    }
    let address = format!("{}.onion", service.service_id);
    write_atomically(
        &dir.join(ONION_ADDRESS_FILE),
        format!("{address}\n").as_bytes(),
        0o644,
    )?;
    tor.wait_published(&service.service_id, ONION_PUBLISH_LIMIT)
        .await?;
    eprintln!("vchat: listening on {address}:{ONION_PORT} (onion service)");
    Ok(())
}

/// The identity folder's data folder for the tor a call starts: apart from
/// the listener's (tor/), so that one identity can listen on its onion
/// service and call out at once (tor locks its data folder).
const CALLER_TOR_DIR: &str = "tor-calls";

/// Starts a tor of vchat's own (for `listen --onion`, or a call to an
/// onion address), saying how far it got on the terminal and in the window.
async fn start_own_tor(
    data_dir: &Path,
    torrc: Option<&Path>,
    ui: &UiHandle,
) -> Result<crate::net::tor::OwnTor, CallError> {
    eprintln!("vchat: starting Tor");
    ui.update(|s| s.progress = Some("Starting Tor".into()));
    let tor = start_tor(data_dir, torrc, |percent, words| {
        eprintln!("vchat: starting Tor (bootstrapping {percent}%: {words})");
        ui.update(|s| s.progress = Some(format!("Starting Tor (bootstrapping {percent}%)")));
    })
    .await?;
    ui.update(|s| s.progress = None);
    Ok(tor)
}

/// How long a call through a proxy keeps trying an onion service: Tor
/// answers "not found" until it has fetched the service's descriptor, and a
/// service that has just started publishing takes tens of seconds to be.
const ONION_PATIENCE: Duration = Duration::from_secs(90);

fn is_onion(host: &str) -> bool {
    host.to_ascii_lowercase().ends_with(".onion")
}

/// [`dial_via`], trying an onion service again (once a second, up to
/// [`ONION_PATIENCE`]) while the proxy cannot reach it yet.
async fn dial_patiently(
    addr: &str,
    route: Route,
    identity: &Identity,
    peer: &PinnedPeer,
) -> Result<SecureStream, NetError> {
    let onion = parse_target(addr).is_ok_and(|t| is_onion(&t.host));
    let give_up = tokio::time::Instant::now() + ONION_PATIENCE;
    if onion {
        info!("reaching {addr} through Tor (can take 30 s)");
    }
    loop {
        match dial_via(addr, route, identity, peer, HANDSHAKE_TIMEOUT).await {
            Err(NetError::Proxy { reason, .. })
                if onion && tokio::time::Instant::now() + Duration::from_secs(1) < give_up =>
            {
                debug!("{addr} not reachable yet ({reason}); trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

/// Says the connection's spoken check on the terminal and (for a call's
/// first connection) in the window. A relink is a new TLS session with a
/// new code: it is said on the terminal; the window keeps the code the
/// two people compared.
fn announce_spoken_code(secure: &SecureStream, ui: Option<&UiHandle>) {
    let peer = &secure.peer.name;
    match secure.spoken_code() {
        Some(code) => {
            info!(
                peer = %peer,
                spoken_code = %code,
                "spoken check: {code}. Read it aloud to {peer}: the same code on both screens means no one is in between; another code means someone is, so hang up"
            );
            if let Some(ui) = ui {
                ui.update(|s| s.spoken_code = Some(code.to_string()));
            }
        }
        None => {
            warn!(peer = %peer, "this connection has no spoken check (the TLS exporter failed)")
        }
    }
}

fn show_peer(ui: &UiHandle, peer: &PinnedPeer) {
    let (name, short) = (peer.name.clone(), peer.fingerprint().short());
    ui.update(|s| {
        s.peer_name = name;
        s.peer_fingerprint = short;
        // No longer waiting: the window stops showing our addresses.
        s.state = CallState::Connecting;
    });
}

/// Refuses a `--record` target that cannot work: a folder that does not
/// exist or does not take new files, or an existing file (unless `force`).
fn check_record_target(path: &Path, force: bool) -> Result<(), CallError> {
    let refuse = |why: String| CallError::Record(format!("{}: {why}", path.display()));
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(refuse(format!(
            "the folder {} does not exist",
            folder.display()
        )));
    }
    if path.is_dir() {
        return Err(refuse("is a folder; give a file name".into()));
    }
    if path.exists() && !force {
        return Err(refuse(
            "the file exists; choose another name or add --force to replace it".into(),
        ));
    }
    // Whether the folder takes a file, found by making one (and removing it).
    let file_name = path
        .file_name()
        .map_or_else(|| "recording".into(), |n| n.to_string_lossy().into_owned());
    let probe = folder.join(format!(".{file_name}.vchat-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(refuse(format!(
            "cannot write in {} ({e})",
            folder.display()
        ))),
    }
}

/// `calls.y4m` as `calls-N.y4m`, for the Nth call of a serving listener.
fn numbered_path(path: &Path, n: u64) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "recording".into(), |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

/// The name the peer sees: `--name`, else our certificate's name made fit
/// for a hello (an identity made by an older vchat may carry a longer name,
/// or characters a hello may not: the call must not fail for that).
fn display_name(options: &CallOptions, identity: &Identity) -> String {
    options
        .name
        .clone()
        .unwrap_or_else(|| fit_display_name(identity.certificate().name()))
}

/// `name` without control characters, cut at a character boundary to at most
/// [`MAX_DISPLAY_NAME_LEN`] bytes of UTF-8.
fn fit_display_name(name: &str) -> String {
    let mut fitted = String::new();
    for c in name.chars().filter(|c| !c.is_control()) {
        if fitted.len() + c.len_utf8() > MAX_DISPLAY_NAME_LEN {
            warn!("your certificate's name is longer than {MAX_DISPLAY_NAME_LEN} bytes; the peer sees {fitted:?}");
            break;
        }
        fitted.push(c);
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_latency_is_a_sane_number_of_milliseconds() {
        assert_eq!(parse_max_latency("400"), Ok(400));
        assert_eq!(
            parse_max_latency(&DEFAULT_MAX_LATENCY.as_millis().to_string()),
            Ok(400)
        );
        let too_small = parse_max_latency("50").unwrap_err();
        assert!(too_small.contains("100-60000"), "{too_small}");
        assert!(parse_max_latency("60001").is_err());
        assert!(parse_max_latency("0.5")
            .unwrap_err()
            .contains("milliseconds"));
    }

    #[test]
    fn a_record_target_is_checked_before_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("call.y4m");
        assert!(check_record_target(&fresh, false).is_ok());
        assert!(!fresh.exists(), "the check leaves nothing behind");
        std::fs::write(&fresh, b"an earlier call").unwrap();
        let err = check_record_target(&fresh, false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert!(check_record_target(&fresh, true).is_ok());
        let nowhere = dir.path().join("no-such-folder/call.y4m");
        let err = check_record_target(&nowhere, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = check_record_target(dir.path(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a folder"), "{err}");
        assert_eq!(
            numbered_path(&fresh, 2),
            dir.path().join("call-2.y4m"),
            "a serving listener's second recording"
        );
    }

    #[test]
    fn a_long_certificate_name_is_cut_at_a_character_boundary() {
        let cyrillic = "Ж".repeat(40); // 80 bytes
        let fitted = fit_display_name(&cyrillic);
        assert_eq!(fitted, "Ж".repeat(32));
        assert_eq!(fit_display_name("Ada\u{7}\nLovelace"), "AdaLovelace");
        assert_eq!(fit_display_name("Ada"), "Ada");
    }
}
