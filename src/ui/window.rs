//! The call window (winit + softbuffer): shows the composed scene, turns keys
//! into commands for the call, and never blocks the network side.
//!
//! The call runs on tokio threads and writes the newest pictures and stats
//! into a shared [`DisplayState`]; it wakes the event loop with one small
//! event per redraw at most (coalesced by a flag), because winit's X11 event
//! channel is unbounded and frames must never queue there. The window only
//! ever holds the state's lock to read it while composing.

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

use super::compose::{Compositor, RgbImage, Scene, View};

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
}

/// Events that wake the window's event loop.
#[derive(Debug)]
pub enum UiEvent {
    Redraw,
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

    /// The call is over: shows `reason` as the final state, then closes.
    pub fn finish(&self, reason: String) {
        self.update(|s| s.state = CallState::Ended(reason));
        self.close();
    }

    /// Closes the window (the call is over).
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
        let mut app = App {
            title,
            opened_at: None,
            handle: self.handle,
            commands,
            view: None,
            error: None,
            compositor: Compositor::default(),
            options: ViewOptions::default(),
        };
        self.event_loop
            .run_app(&mut app)
            .map_err(|e| UiError::Window(e.to_string()))?;
        match app.error {
            Some(e) => Err(e),
            None => Ok(()),
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

const HINT: &str = "q hang up  v camera  p self view  s swap  f fullscreen  m mirror";

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
        let _ = self.commands.send(UiCommand::HangUp);
        self.handle
            .update(|s| s.state = CallState::Ended("hanging up".into()));
    }

    fn key(&mut self, key: &Key, event_loop: &ActiveEventLoop) {
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
                "p" => self.options.show_self = !self.options.show_self,
                "s" => self.options.swapped = !self.options.swapped,
                "m" => self.options.mirror_self = !self.options.mirror_self,
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
        let (overlay, peer_picture, peer_on, connecting, self_picture, self_on) = {
            let state = lock(&self.handle.state);
            (
                overlay_lines(&state),
                state.peer_picture.clone(),
                state.peer_camera_on,
                state.state == CallState::Connecting,
                state.self_picture.clone(),
                state.self_camera_on,
            )
        };
        let peer = match (&peer_picture, peer_on) {
            (_, false) => View::Placeholder("Camera off"),
            (Some(image), true) => View::Picture {
                image,
                mirror: false,
            },
            (None, true) if connecting => View::Placeholder("Connecting..."),
            (None, true) => View::Placeholder("Waiting for video"),
        };
        let me = match (&self_picture, self_on) {
            (_, false) => View::Placeholder("Camera off"),
            (Some(image), true) => View::Picture {
                image,
                mirror: self.options.mirror_self,
            },
            (None, true) => View::Placeholder("No video"),
        };
        let (main, corner) = if self.options.swapped {
            (me, peer)
        } else {
            (peer, me)
        };
        let scene = Scene {
            main,
            pip: self.options.show_self.then_some(corner),
            overlay: &overlay,
            hint: self
                .opened_at
                .is_some_and(|t| t.elapsed() < HINT_FOR)
                .then_some(HINT),
        };
        self.compositor
            .render(&mut buffer, w.get(), h.get(), &scene);
        buffer.present().map_err(|e| UiError::Window(e.to_string()))
    }
}

/// The overlay text: who, how sure we are of who, the state, the stats.
pub fn overlay_lines(state: &DisplayState) -> Vec<String> {
    let status = match &state.state {
        CallState::Waiting(addresses) => format!("waiting on {}", addresses.join(", ")),
        CallState::Connecting => "connecting".to_owned(),
        CallState::Connected => "connected".to_owned(),
        CallState::Reconnecting => "reconnecting...".to_owned(),
        CallState::Ended(why) => format!("ended: {why}"),
    };
    let mut lines = vec![
        format!("{}  [{}]", state.peer_name, state.peer_fingerprint),
        status,
    ];
    lines.extend(state.stats.iter().cloned());
    lines
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
            UiEvent::Close => event_loop.exit(),
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
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
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed => {
                self.key(&event.logical_key, event_loop);
            }
            _ => {}
        }
    }
}
