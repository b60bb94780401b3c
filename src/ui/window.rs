//! The call window (winit + softbuffer): shows the composed scene, turns keys
//! into commands for the call, and never blocks the network side.
//!
//! The call runs on tokio threads and writes the newest pictures and stats
//! into a shared [`DisplayState`]; it wakes the event loop with one small
//! event per redraw at most (coalesced by a flag), because winit's X11 event
//! channel is unbounded and frames must never queue there. The window only
//! ever holds the state's lock to read it while composing.
//!
//! The window outlives the call: [`UiHandle::finish`] turns it into an end
//! screen with the reason, closed by any key; only an end the person chose
//! here (q, Esc, close, Ctrl-C) closes it at once.

use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc::UnboundedSender;
use winit::application::ApplicationHandler;
use winit::dpi::LogicalSize;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Fullscreen, Window, WindowId};

use super::compose::{Compositor, Notice, Pane, RgbImage, Scene, View};

/// Where the call stands, as shown in the overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallState {
    /// A listener waiting for its peer: the addresses a peer can dial.
    Waiting(Vec<String>),
    Connecting,
    Connected,
    /// The link dropped without a `bye`: redialling, or waiting for the
    /// same peer to come back.
    Reconnecting,
    /// The call is over, and why, in words for the user.
    Ended(String),
}

/// What the call shares with the window.
#[derive(Debug)]
pub struct DisplayState {
    pub peer_name: String,
    /// The name the peer gave in its `hello`, once it is known.
    pub peer_display_name: Option<String>,
    pub peer_fingerprint: String,
    pub state: CallState,
    /// The newest picture from the peer (shared, so the window can draw it
    /// without holding the lock).
    pub peer_picture: Option<Arc<RgbImage>>,
    /// False when the peer said its camera is off.
    pub peer_camera_on: bool,
    /// The newest picture of ourselves.
    pub self_picture: Option<Arc<RgbImage>>,
    /// False when we turned our camera off.
    pub self_camera_on: bool,
    /// Stats lines for the overlay.
    pub stats: Vec<String>,
    /// The connection's spoken check ("123 456"), once connected.
    pub spoken_code: Option<String>,
    /// True when the peer said it muted its microphone.
    pub peer_muted: bool,
    /// True when we muted ours.
    pub self_muted: bool,
    /// A word about our audio for the overlay (e.g. "use headphones"), if any.
    pub audio_note: Option<String>,
    /// What connecting is doing, when it takes long enough to say
    /// ("starting Tor (bootstrapping 45%)"); shown instead of "Connecting...".
    pub progress: Option<String>,
}

impl DisplayState {
    /// The state before a call connects.
    pub fn new(peer_name: &str, peer_fingerprint: &str) -> Self {
        DisplayState {
            peer_name: peer_name.to_owned(),
            peer_display_name: None,
            peer_fingerprint: peer_fingerprint.to_owned(),
            state: CallState::Connecting,
            peer_picture: None,
            peer_camera_on: true,
            self_picture: None,
            self_camera_on: true,
            stats: Vec::new(),
            spoken_code: None,
            peer_muted: false,
            self_muted: false,
            audio_note: None,
            progress: None,
        }
    }
}

/// What the window asks of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UiCommand {
    /// q, Esc or the window was closed.
    HangUp,
    /// v: turn our camera on or off.
    SetCamera(bool),
    /// m: unmute (true) or mute (false) our microphone.
    SetMicrophone(bool),
    /// Ctrl-C at the terminal (not from the window: `call::run` forwards the
    /// signal into the same channel, so there is one way to stop a call in
    /// every phase, and a Ctrl-C is queued, never lost, while a phase that
    /// does not listen yet is finishing).
    Interrupt,
}

/// Events that wake the window's event loop.
#[derive(Debug)]
pub enum UiEvent {
    Redraw,
    /// The call is over; the state says why.
    Finished,
    /// Ctrl-C: the person at the terminal wants the program gone.
    Interrupted,
    Close,
}

/// The call's handle on the window: update the shared state, wake the window.
#[derive(Clone)]
pub struct UiHandle {
    state: Arc<Mutex<DisplayState>>,
    proxy: Option<EventLoopProxy<UiEvent>>,
    redraw_pending: Arc<AtomicBool>,
}

impl UiHandle {
    /// A handle with no window behind it (headless): updates are kept, nothing is drawn.
    pub fn headless(state: DisplayState) -> Self {
        UiHandle {
            state: Arc::new(Mutex::new(state)),
            proxy: None,
            redraw_pending: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Changes the shared state and asks for one redraw.
    pub fn update(&self, change: impl FnOnce(&mut DisplayState)) {
        change(&mut lock(&self.state));
        if let Some(proxy) = &self.proxy {
            if !self.redraw_pending.swap(true, Ordering::AcqRel) {
                let _ = proxy.send_event(UiEvent::Redraw);
            }
        }
    }

    /// The call is over: the window shows `reason` large in the middle and
    /// stays open until a key press or close, so the person sees what
    /// happened; it closes at once only if they ended the call themselves
    /// (q, Esc, closing the window, Ctrl-C).
    pub fn finish(&self, reason: String) {
        self.update(|s| s.state = CallState::Ended(reason));
        if let Some(proxy) = &self.proxy {
            let _ = proxy.send_event(UiEvent::Finished);
        }
    }

    /// Closes the window at once, whatever it shows.
    pub fn close(&self) {
        if let Some(proxy) = &self.proxy {
            let _ = proxy.send_event(UiEvent::Close);
        }
    }

    /// Whether a window is attached.
    pub fn has_window(&self) -> bool {
        self.proxy.is_some()
    }
}

/// A poisoned lock only means a panic elsewhere; the state is still
/// displayable, so recover it rather than cascade the panic into the UI.
fn lock(state: &Mutex<DisplayState>) -> MutexGuard<'_, DisplayState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why the window could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("no display available ({0}): run with --headless, or start a desktop session / Xvfb and set DISPLAY")]
    NoDisplay(String),
    #[error("cannot open the window: {0}")]
    Window(String),
}

/// An event loop, created on the main thread before the call starts so a
/// missing display is reported before anything connects.
pub struct WindowLoop {
    event_loop: EventLoop<UiEvent>,
    handle: UiHandle,
}

impl WindowLoop {
    /// Connects to the display. Fails with [`UiError::NoDisplay`] when there is none.
    pub fn new(state: DisplayState) -> Result<Self, UiError> {
        let event_loop = EventLoop::<UiEvent>::with_user_event()
            .build()
            .map_err(|e| UiError::NoDisplay(describe_display_error(&e.to_string())))?;
        let handle = UiHandle {
            state: Arc::new(Mutex::new(state)),
            proxy: Some(event_loop.create_proxy()),
            redraw_pending: Arc::new(AtomicBool::new(false)),
        };
        Ok(WindowLoop { event_loop, handle })
    }

    /// The handle the call uses to update the window.
    pub fn handle(&self) -> UiHandle {
        self.handle.clone()
    }

    /// Shows the window until the call closes it or the user hangs up.
    /// Must run on the main thread; returns when the window is gone.
    pub fn run(self, title: String, commands: UnboundedSender<UiCommand>) -> Result<(), UiError> {
        let interrupts = self
            .handle
            .proxy
            .clone()
            .map(InterruptWatch::start)
            .transpose()?;
        let mut app = App {
            title,
            opened_at: None,
            handle: self.handle,
            commands,
            view: None,
            error: None,
            compositor: Compositor::default(),
            options: ViewOptions::default(),
            user_ended: false,
            finished: false,
        };
        let ran = self
            .event_loop
            .run_app(&mut app)
            .map_err(|e| UiError::Window(e.to_string()));
        drop(interrupts);
        ran?;
        match app.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Turns Ctrl-C into [`UiEvent::Interrupted`] while the window is open.
/// Once the call installs its own Ctrl-C handler, the signal no longer ends
/// the process by itself; without this, a window showing why the call ended
/// would keep a process alive that its user had interrupted. A thread of its
/// own with a small runtime, because the call's runtime may already be gone
/// when the window is still showing the end; stopped and joined on drop.
struct InterruptWatch {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InterruptWatch {
    fn start(proxy: EventLoopProxy<UiEvent>) -> Result<Self, UiError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| UiError::Window(format!("cannot watch for Ctrl-C: {e}")))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vchat-window-ctrl-c".into())
            .spawn(move || {
                runtime.block_on(async {
                    tokio::select! {
                        interrupted = tokio::signal::ctrl_c() => {
                            if interrupted.is_ok() {
                                let _ = proxy.send_event(UiEvent::Interrupted);
                            }
                        }
                        _ = stopped => {}
                    }
                })
            })
            .map_err(|e| UiError::Window(format!("cannot watch for Ctrl-C: {e}")))?;
        Ok(InterruptWatch {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for InterruptWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// winit's message names its own source file; people need to know which
/// variable is missing or which display failed.
fn describe_display_error(winit_error: &str) -> String {
    let unset = |name| std::env::var_os(name).is_none_or(|v| v.is_empty());
    if unset("DISPLAY") && unset("WAYLAND_DISPLAY") {
        return "neither DISPLAY nor WAYLAND_DISPLAY is set".into();
    }
    let reason = winit_error
        .rsplit(": ")
        .next()
        .unwrap_or(winit_error)
        .trim();
    format!(
        "cannot connect to display {:?} ({reason})",
        std::env::var("DISPLAY").unwrap_or_default()
    )
}

/// Local display choices, toggled by keys; the peer never sees them.
#[derive(Debug)]
struct ViewOptions {
    show_self: bool,
    swapped: bool,
    mirror_self: bool,
    fullscreen: bool,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            show_self: true,
            swapped: false,
            // Like a mirror: moving your right hand moves the right side.
            mirror_self: true,
            fullscreen: false,
        }
    }
}

/// The keys, two spaces between bindings (the layout wraps only there).
const HINT: &str = "q hang up  m mute  v camera  p self view  s swap  f fullscreen  r mirror";

/// Under the reason once the call is over.
pub const END_HINT: &str = "press any key or close the window";

/// The key hint covers the bottom of the video, so it is shown only for
/// the first seconds after the window opens.
const HINT_FOR: std::time::Duration = std::time::Duration::from_secs(4);

struct WindowView {
    window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
}

struct App {
    title: String,
    opened_at: Option<std::time::Instant>,
    handle: UiHandle,
    commands: UnboundedSender<UiCommand>,
    view: Option<WindowView>,
    error: Option<UiError>,
    compositor: Compositor,
    options: ViewOptions,
    /// The person ended the call here (q, Esc, close, Ctrl-C): when the
    /// call finishes there is nothing to tell them, so the window closes.
    user_ended: bool,
    /// The call is over and the window shows why; any key closes it.
    finished: bool,
}

impl App {
    fn open(&mut self, event_loop: &ActiveEventLoop) -> Result<WindowView, UiError> {
        let attributes = Window::default_attributes()
            .with_title(self.title.clone())
            .with_inner_size(LogicalSize::new(960.0, 540.0))
            .with_min_inner_size(LogicalSize::new(160.0, 120.0));
        let window = Rc::new(
            event_loop
                .create_window(attributes)
                .map_err(|e| UiError::Window(e.to_string()))?,
        );
        let context =
            softbuffer::Context::new(window.clone()).map_err(|e| UiError::Window(e.to_string()))?;
        let surface = softbuffer::Surface::new(&context, window.clone())
            .map_err(|e| UiError::Window(e.to_string()))?;
        Ok(WindowView { window, surface })
    }

    fn hang_up(&mut self) {
        self.user_ended = true;
        let _ = self.commands.send(UiCommand::HangUp);
        self.handle
            .update(|s| s.state = CallState::Ended("hanging up".into()));
    }

    fn key(&mut self, key: &Key, event_loop: &ActiveEventLoop) {
        if self.finished {
            // The end screen: the person has read it.
            event_loop.exit();
            return;
        }
        match key {
            Key::Named(NamedKey::Escape) => self.hang_up(),
            Key::Character(c) => match c.to_lowercase().as_str() {
                "q" => self.hang_up(),
                "v" => {
                    let mut on = true;
                    self.handle.update(|s| {
                        s.self_camera_on = !s.self_camera_on;
                        on = s.self_camera_on;
                    });
                    let _ = self.commands.send(UiCommand::SetCamera(on));
                }
                "m" => {
                    let mut on = true;
                    self.handle.update(|s| {
                        s.self_muted = !s.self_muted;
                        on = !s.self_muted;
                    });
                    let _ = self.commands.send(UiCommand::SetMicrophone(on));
                }
                "p" => self.options.show_self = !self.options.show_self,
                "s" => self.options.swapped = !self.options.swapped,
                "r" => self.options.mirror_self = !self.options.mirror_self,
                "f" => {
                    self.options.fullscreen = !self.options.fullscreen;
                    if let Some(view) = &self.view {
                        view.window.set_fullscreen(
                            self.options
                                .fullscreen
                                .then_some(Fullscreen::Borderless(None)),
                        );
                    }
                }
                _ => return,
            },
            _ => return,
        }
        if let Some(view) = &self.view {
            view.window.request_redraw();
        }
        let _ = event_loop;
    }

    fn draw(&mut self) -> Result<(), UiError> {
        let Some(view) = self.view.as_mut() else {
            return Ok(());
        };
        let size = view.window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return Ok(()); // minimised
        };
        view.surface
            .resize(w, h)
            .map_err(|e| UiError::Window(e.to_string()))?;
        let mut buffer = view
            .surface
            .buffer_mut()
            .map_err(|e| UiError::Window(e.to_string()))?;
        // Copy what to draw and let go of the lock before composing, so the
        // call's threads never wait for a redraw.
        let hint = self.opened_at.is_some_and(|t| t.elapsed() < HINT_FOR);
        let parts = FrameParts::of(&lock(&self.handle.state), &self.options, hint);
        let scene = parts.scene();
        self.compositor
            .render(&mut buffer, w.get(), h.get(), &scene);
        buffer.present().map_err(|e| UiError::Window(e.to_string()))
    }
}

/// The overlay text: who, how sure we are of who, the state, the stats.
pub fn overlay_lines(state: &DisplayState) -> Vec<String> {
    let status = match &state.state {
        CallState::Waiting(_) => "waiting".to_owned(),
        CallState::Connecting => "connecting".to_owned(),
        CallState::Connected => "connected".to_owned(),
        CallState::Reconnecting => "reconnecting...".to_owned(),
        // The reason itself is the notice in the middle.
        CallState::Ended(_) => "call ended".to_owned(),
    };
    let who = match state.peer_fingerprint.as_str() {
        "" => state.peer_name.clone(),
        fingerprint => format!("{}  [{fingerprint}]", state.peer_name),
    };
    // The spoken check joins the status line rather than adding one: the
    // overlay must not grow down over the picture.
    let status = match (&state.spoken_code, &state.state) {
        (Some(code), CallState::Connected | CallState::Reconnecting) => {
            format!("{status} - spoken check {code}: read it aloud")
        }
        _ => status,
    };
    // A word on audio ("use headphones") joins the status line too.
    let status = match &state.audio_note {
        Some(note) => format!("{status} - {note}"),
        None => status,
    };
    let mut lines = vec![who, status];
    lines.extend(state.stats.iter().cloned());
    lines
}

/// A picture's name, marked when that side's microphone is muted.
fn muted_label(name: String, muted: bool) -> String {
    if muted {
        format!("{name} (muted)")
    } else {
        name
    }
}

/// What fills a pane, owned, so the state's lock is let go before drawing.
#[derive(Clone, Debug, PartialEq)]
enum Content {
    Picture { image: Arc<RgbImage>, mirror: bool },
    Placeholder(String),
}

/// A pane's content and the name shown on it.
#[derive(Clone, Debug, PartialEq)]
struct PaneParts {
    pub content: Content,
    pub label: Option<String>,
}

/// Everything one redraw shows, copied out of the shared state: the pure
/// part of drawing, tested without a display.
#[derive(Clone, Debug, PartialEq)]
struct FrameParts {
    pub main: PaneParts,
    pub pip: Option<PaneParts>,
    pub overlay: Vec<String>,
    pub hint: Option<&'static str>,
    /// The notice in the middle and its footer.
    pub notice: Option<(String, Option<&'static str>)>,
}

impl FrameParts {
    fn of(state: &DisplayState, options: &ViewOptions, show_hint: bool) -> Self {
        // The name the peer gave itself, else the name we pinned it under.
        let peer_label = state
            .peer_display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| Some(state.peer_name.clone()).filter(|n| !n.is_empty()))
            .map(|name| muted_label(name, state.peer_muted));
        let peer = match (&state.peer_picture, state.peer_camera_on, &state.state) {
            (_, _, CallState::Waiting(addresses)) => PaneParts {
                content: Content::Placeholder(waiting_text(&state.peer_name, addresses)),
                // Nobody is on this picture yet.
                label: None,
            },
            (_, false, _) => PaneParts {
                content: Content::Placeholder("Camera off".into()),
                label: peer_label,
            },
            (Some(image), true, _) => PaneParts {
                content: Content::Picture {
                    image: image.clone(),
                    mirror: false,
                },
                label: peer_label,
            },
            (None, true, CallState::Connecting) if state.progress.is_some() => PaneParts {
                content: Content::Placeholder(state.progress.clone().unwrap_or_default()),
                label: peer_label,
            },
            (None, true, waiting) => PaneParts {
                content: Content::Placeholder(
                    match waiting {
                        CallState::Connecting => "Connecting...",
                        CallState::Reconnecting => "Reconnecting...",
                        CallState::Ended(_) => "No video",
                        _ => "Waiting for video",
                    }
                    .into(),
                ),
                label: peer_label,
            },
        };
        let me = PaneParts {
            content: match (&state.self_picture, state.self_camera_on) {
                (_, false) => Content::Placeholder("Camera off".into()),
                (Some(image), true) => Content::Picture {
                    image: image.clone(),
                    mirror: options.mirror_self,
                },
                (None, true) => Content::Placeholder("No video".into()),
            },
            label: Some(muted_label("you".into(), state.self_muted)),
        };
        let (main, corner) = if options.swapped {
            (me, peer)
        } else {
            (peer, me)
        };
        let notice = match &state.state {
            CallState::Ended(why) => Some((why.clone(), Some(END_HINT))),
            CallState::Reconnecting => Some(("reconnecting...".into(), None)),
            _ => None,
        };
        let ended = matches!(state.state, CallState::Ended(_));
        let (main, corner) = if ended {
            // The call is over: no self view (its last picture means
            // nothing now) and no names; the overlay says who it was with.
            let main = PaneParts {
                content: match main.content {
                    Content::Placeholder(_) => Content::Placeholder(String::new()),
                    picture => picture,
                },
                label: None,
            };
            (main, None)
        } else {
            (main, options.show_self.then_some(corner))
        };
        FrameParts {
            main,
            pip: corner,
            overlay: overlay_lines(state),
            // Keys other than "any key" mean nothing on the end screen.
            hint: (show_hint && !matches!(state.state, CallState::Ended(_))).then_some(HINT),
            notice,
        }
    }

    fn scene(&self) -> Scene<'_> {
        fn pane(p: &PaneParts) -> Pane<'_> {
            Pane {
                view: match &p.content {
                    Content::Picture { image, mirror } => View::Picture {
                        image,
                        mirror: *mirror,
                    },
                    Content::Placeholder(words) => View::Placeholder(words),
                },
                label: p.label.as_deref(),
            }
        }
        Scene {
            main: pane(&self.main),
            pip: self.pip.as_ref().map(pane),
            overlay: &self.overlay,
            hint: self.hint,
            notice: self.notice.as_ref().map(|(text, footer)| Notice {
                text,
                footer: *footer,
            }),
        }
    }
}

/// "waiting for Bob on 192.168.1.4:7878, [2001:db8::4]:7878".
fn waiting_text(peer_name: &str, addresses: &[String]) -> String {
    let who = if peer_name.is_empty() {
        "a call".to_owned()
    } else {
        peer_name.to_owned()
    };
    match addresses {
        [] => format!("waiting for {who}"),
        _ => format!("waiting for {who} on {}", addresses.join(", ")),
    }
}

impl ApplicationHandler<UiEvent> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.view.is_some() {
            return;
        }
        match self.open(event_loop) {
            Ok(view) => {
                view.window.request_redraw();
                self.view = Some(view);
                self.opened_at = Some(std::time::Instant::now());
            }
            Err(e) => {
                self.error = Some(e);
                let _ = self.commands.send(UiCommand::HangUp);
                event_loop.exit();
            }
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: UiEvent) {
        match event {
            UiEvent::Redraw => {
                self.handle.redraw_pending.store(false, Ordering::Release);
                if let Some(view) = &self.view {
                    view.window.request_redraw();
                }
            }
            UiEvent::Finished if self.user_ended => event_loop.exit(),
            UiEvent::Finished => {
                self.finished = true;
                if let Some(view) = &self.view {
                    view.window.request_redraw();
                }
            }
            UiEvent::Interrupted => {
                self.user_ended = true;
                let _ = self.commands.send(UiCommand::HangUp);
                event_loop.exit();
            }
            UiEvent::Close => event_loop.exit(),
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested if self.finished => event_loop.exit(),
            WindowEvent::CloseRequested => self.hang_up(),
            WindowEvent::Resized(_) => {
                if let Some(view) = &self.view {
                    view.window.request_redraw();
                }
            }
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.draw() {
                    self.error = Some(e);
                    let _ = self.commands.send(UiCommand::HangUp);
                    event_loop.exit();
                }
            }
            // On the end screen a key held from before (auto-repeat) is not
            // a fresh "I have read it".
            WindowEvent::KeyboardInput { event, .. }
                if event.state == ElementState::Pressed && !(self.finished && event.repeat) =>
            {
                self.key(&event.logical_key, event_loop);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(rgb: [u8; 3]) -> Arc<RgbImage> {
        Arc::new(RgbImage {
            width: 4,
            height: 3,
            pixels: rgb.repeat(12).into(),
        })
    }

    fn in_call() -> DisplayState {
        let mut state = DisplayState::new("bob", "4OYM-IQUJ-ABCD-EFGH-IJKL");
        state.state = CallState::Connected;
        state.peer_display_name = Some("Robert".into());
        state.peer_picture = Some(picture([255, 0, 0]));
        state.self_picture = Some(picture([0, 0, 255]));
        state
    }

    fn image(content: &Content) -> Option<&RgbImage> {
        match content {
            Content::Picture { image, .. } => Some(image),
            Content::Placeholder(_) => None,
        }
    }

    #[test]
    fn the_peer_picture_carries_its_own_name_and_keeps_it_when_swapped() {
        let state = in_call();
        let mut options = ViewOptions::default();
        let parts = FrameParts::of(&state, &options, false);
        assert_eq!(parts.main.label.as_deref(), Some("Robert"));
        assert_eq!(image(&parts.main.content), state.peer_picture.as_deref());
        let pip = parts.pip.unwrap();
        assert_eq!(pip.label.as_deref(), Some("you"));

        options.swapped = true;
        let swapped = FrameParts::of(&state, &options, false);
        assert_eq!(swapped.main.label.as_deref(), Some("you"));
        assert_eq!(image(&swapped.main.content), state.self_picture.as_deref());
        let pip = swapped.pip.as_ref().unwrap();
        assert_eq!(pip.label.as_deref(), Some("Robert"));
        assert_eq!(image(&pip.content), state.peer_picture.as_deref());
        // And the scene handed to the compositor says the same.
        let scene = swapped.scene();
        assert_eq!(scene.main.label, Some("you"));
        assert_eq!(scene.pip.unwrap().label, Some("Robert"));
    }

    #[test]
    fn without_a_hello_name_the_pinned_name_labels_the_peer() {
        let mut state = in_call();
        state.peer_display_name = None;
        let parts = FrameParts::of(&state, &ViewOptions::default(), false);
        assert_eq!(parts.main.label.as_deref(), Some("bob"));
        state.peer_display_name = Some("  ".into());
        let parts = FrameParts::of(&state, &ViewOptions::default(), false);
        assert_eq!(parts.main.label.as_deref(), Some("bob"));
    }

    #[test]
    fn a_waiting_listener_shows_whom_it_waits_for_and_where() {
        let mut state = DisplayState::new("Bob", "");
        state.state =
            CallState::Waiting(vec!["192.168.1.4:7878".into(), "[2001:db8::4]:7878".into()]);
        let parts = FrameParts::of(&state, &ViewOptions::default(), true);
        assert_eq!(
            parts.main.content,
            Content::Placeholder("waiting for Bob on 192.168.1.4:7878, [2001:db8::4]:7878".into())
        );
        assert_eq!(parts.main.label, None);
        assert_eq!(parts.overlay[..2], ["Bob".to_owned(), "waiting".to_owned()]);
        assert_eq!(parts.hint, Some(HINT));
    }

    #[test]
    fn an_ended_call_shows_the_reason_and_how_to_close() {
        let mut state = in_call();
        state.state = CallState::Ended("Bob hung up".into());
        let parts = FrameParts::of(&state, &ViewOptions::default(), true);
        assert_eq!(parts.notice, Some(("Bob hung up".into(), Some(END_HINT))));
        assert_eq!(parts.hint, None, "the keys do nothing any more");
        assert_eq!(parts.pip, None);
        assert_eq!(parts.main.label, None);
        assert_eq!(image(&parts.main.content), state.peer_picture.as_deref());
        state.peer_picture = None;
        let parts = FrameParts::of(&state, &ViewOptions::default(), true);
        assert_eq!(parts.main.content, Content::Placeholder(String::new()));
        assert_eq!(parts.overlay[1], "call ended");

        state.state = CallState::Reconnecting;
        let parts = FrameParts::of(&state, &ViewOptions::default(), true);
        assert_eq!(parts.notice, Some(("reconnecting...".into(), None)));
        assert_eq!(parts.hint, Some(HINT));
    }

    #[test]
    fn the_hint_names_every_key_the_window_handles() {
        for key in ["q ", "v ", "p ", "s ", "f ", "m "] {
            assert!(HINT.split("  ").any(|item| item.starts_with(key)), "{key}");
        }
    }
}
