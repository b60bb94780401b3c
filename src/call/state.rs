//! The call's rules as a state machine with no I/O and no clock of its own.
//!
//! Why: the rules of a call (PROTOCOL.md sections 5-7: who says hello first,
//! what may arrive before `accept`, pings and their flood limit, liveness,
//! `bye` in every state, when a dropped link is worth redialling) used to be
//! spread over the handshake, the reader task and the supervisor, where only
//! real sockets and real time could test them. Here they are plain data, in
//! the way of quinn-proto: the driver feeds [`Event`]s with the time they
//! happened, takes [`Action`]s out with [`CallMachine::poll_action`], and asks
//! [`CallMachine::next_deadline`] when to come back with [`Event::Tick`]. The
//! tests below run whole calls, timeouts and reconnects in memory.
//!
//! Video frames do not pass through here: the reader hands them straight to
//! the newest-frame slot (so a fast peer cannot make us queue them); it only
//! reports [`Event::Heard`] so liveness counts them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::handshake::PeerIntro;
use super::{CallError, EndReason};
use crate::protocol::limits::{
    AUDIO_VERSION, HELLO_TIMEOUT, KEYFRAME_REQUEST_INTERVAL, MIN_PROTOCOL_VERSION, PEER_TIMEOUT,
    PING_INTERVAL,
};
use crate::protocol::{Accept, Bye, ByeReason, Hello, Message, PingMeter, Role};

/// The first wait before redialling a dropped link, doubled after each failed
/// attempt up to [`MAX_RECONNECT_BACKOFF`]: quick when the link only hiccuped,
/// gentle on a network that is down.
pub const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// The longest wait between two redials, so a link that comes back is used
/// within a few seconds.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// The default `--reconnect`: how long a dropped call is redialled (by the
/// caller) or waited for (by the listener) before it ends.
pub const DEFAULT_RECONNECT_WINDOW: Duration = Duration::from_secs(30);

/// What the machine needs to know about the call from the outside.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub role: Role,
    /// Our hello, sent first by the caller and in answer by the listener.
    pub hello: Hello,
    /// A peer silent (not a byte) for this long is gone.
    pub peer_timeout: Duration,
    /// How long a dropped link is redialled or waited for; zero turns
    /// reconnecting off.
    pub reconnect_window: Duration,
}

impl MachineConfig {
    /// The protocol's timeouts, no reconnect.
    pub fn new(role: Role, hello: Hello) -> Self {
        MachineConfig {
            role,
            hello,
            peer_timeout: PEER_TIMEOUT,
            reconnect_window: Duration::ZERO,
        }
    }
}

/// Something that happened to the call, reported by its driver.
#[derive(Debug)]
pub enum Event {
    /// A whole message from the peer (not video: see the module doc).
    Received(Message),
    /// Bytes arrived from the peer (a message, or part of a large one).
    Heard,
    /// Time passed; the driver calls this at [`CallMachine::next_deadline`].
    Tick,
    /// The user (or the program on the user's behalf) ends the call.
    Stop(EndReason),
    /// The user turned our camera on or off.
    SetCamera(bool),
    /// The user muted (false) or unmuted (true) our microphone.
    SetMicrophone(bool),
    /// Something on our side failed (encoder, recorder, window...).
    Failed(CallError),
    /// The connection broke or closed without a `bye`.
    LinkLost(String),
    /// A new connection to the same peer replaces the lost one (redialled
    /// by the caller, accepted by the listener): the handshake starts again.
    Relinked,
    /// Our decoder cannot go on without a keyframe from the peer.
    WantKeyframe,
    /// A new connection to the same peer has already shaken hands (by its
    /// driver, before any of our video could reach it): the call is live
    /// again with what the peer's new hello said.
    Resumed(PeerIntro),
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action {
    /// Write this message to the peer (pongs may be coalesced by the link).
    Send(Message),
    /// The handshake is complete: start (or resume) the media.
    Connected { intro: PeerIntro, resumed: bool },
    /// The peer turned its camera on or off.
    PeerCamera(bool),
    /// The peer muted (false) or unmuted (true) its microphone.
    PeerMicrophone(bool),
    /// A pong came back: the round-trip time, and the peer's clock when it
    /// answered if it said (version 3).
    RoundTrip {
        rtt: Duration,
        peer_time_us: Option<u64>,
    },
    /// The peer's decoder needs a keyframe: make the next H.264 frame one.
    MakeKeyframe,
    /// The link dropped: the caller redials after `after` (attempt counts
    /// from 1), the listener waits for the same peer. Media pauses.
    Reconnect { attempt: u32, after: Duration },
    /// The call is over. `bye` (if any) goes out before close_notify; none
    /// when the peer already said bye or the link is gone.
    End { bye: Option<Bye>, outcome: Outcome },
}

/// How the call ended.
#[derive(Debug)]
pub enum Outcome {
    /// A normal end (exit status 0).
    Ended(EndReason),
    /// A failure (exit status 1).
    Failed(CallError),
}

/// Where the call stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Before the peer's hello (the caller has sent its own).
    AwaitingHello,
    /// The caller has the listener's hello and waits for its accept.
    AwaitingAccept,
    /// Hellos exchanged and accepted: video flows.
    Live,
    /// The link dropped without a bye; since when.
    Reconnecting { since: Instant, attempt: u32 },
    /// Over: nothing more is sent or done.
    Ended,
}

/// The call's rules; see the module doc.
#[derive(Debug)]
pub struct CallMachine {
    config: MachineConfig,
    phase: Phase,
    actions: VecDeque<Action>,
    /// The time the handshake (or the re-handshake) must finish by.
    hello_deadline: Instant,
    /// The last time the peer was heard from.
    last_heard: Instant,
    next_ping: Instant,
    /// Ping nonces are microseconds since this instant, so a pong gives the RTT.
    epoch: Instant,
    pings: PingMeter,
    peer_hello: Option<Hello>,
    /// The peer's camera, as its `camera` messages before accept said.
    peer_camera_on: bool,
    /// True once the call has been live: a later handshake resumes it.
    was_live: bool,
    /// The protocol version the call speaks (the lower of the two hellos').
    version: u32,
    /// When we last asked the peer for a keyframe.
    last_keyframe_request: Option<Instant>,
    /// Our microphone (false: muted), said again on each new connection.
    microphone_on: bool,
}

impl CallMachine {
    /// A call starting at `now`, on a fresh connection.
    pub fn new(config: MachineConfig, now: Instant) -> Self {
        let mut machine = CallMachine {
            config,
            phase: Phase::AwaitingHello,
            actions: VecDeque::new(),
            hello_deadline: now + HELLO_TIMEOUT,
            last_heard: now,
            next_ping: now,
            epoch: now,
            pings: PingMeter::new(),
            peer_hello: None,
            peer_camera_on: true,
            was_live: false,
            version: MIN_PROTOCOL_VERSION,
            last_keyframe_request: None,
            microphone_on: true,
        };
        machine.start_handshake(now);
        machine
    }

    /// Where the call stands.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The next thing to do, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the driver must come back with [`Event::Tick`]; `None` once ended.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::AwaitingHello | Phase::AwaitingAccept => Some(self.hello_deadline),
            Phase::Live => Some(
                self.next_ping
                    .min(self.last_heard + self.config.peer_timeout),
            ),
            Phase::Reconnecting { since, .. } => Some(*since + self.config.reconnect_window),
            Phase::Ended => None,
        }
    }

    /// Takes in one event that happened at `now`.
    pub fn handle(&mut self, now: Instant, event: Event) {
        if self.phase == Phase::Ended {
            return;
        }
        match event {
            Event::Received(message) => {
                self.last_heard = now;
                self.on_message(now, message);
            }
            Event::Heard => self.last_heard = now,
            Event::Tick => self.on_tick(now),
            Event::Stop(reason) => {
                let bye = self
                    .can_send()
                    .then(|| Bye::new(ByeReason::Hangup, reason.to_string()));
                self.end(bye, Outcome::Ended(reason));
            }
            Event::SetCamera(on) => {
                if self.can_send() {
                    self.send(Message::Camera { on });
                }
            }
            Event::SetMicrophone(on) => {
                self.microphone_on = on;
                if matches!(self.phase, Phase::Live) && self.version >= AUDIO_VERSION {
                    self.send(Message::Microphone { on });
                }
            }
            Event::Failed(error) => {
                let bye = if self.can_send() { error.bye() } else { None };
                self.end(bye, Outcome::Failed(error));
            }
            Event::LinkLost(why) => self.on_link_lost(now, CallError::ConnectionLost(why)),
            Event::WantKeyframe => self.ask_for_keyframe(now),
            Event::Relinked => {
                if matches!(self.phase, Phase::Reconnecting { .. }) {
                    self.start_handshake(now);
                }
            }
            Event::Resumed(intro) => {
                if matches!(self.phase, Phase::Reconnecting { .. }) {
                    self.last_heard = now;
                    self.pings = PingMeter::new();
                    self.peer_hello = Some(intro.hello);
                    self.peer_camera_on = intro.camera_on;
                    self.connected(now);
                }
            }
        }
    }

    /// Whether the connection can carry a message from us.
    fn can_send(&self) -> bool {
        !matches!(self.phase, Phase::Reconnecting { .. } | Phase::Ended)
    }

    fn start_handshake(&mut self, now: Instant) {
        self.phase = Phase::AwaitingHello;
        self.hello_deadline = now + HELLO_TIMEOUT;
        self.last_heard = now;
        self.pings = PingMeter::new();
        self.peer_hello = None;
        self.peer_camera_on = true;
        // The caller speaks first (PROTOCOL.md section 5).
        if self.config.role == Role::Caller {
            self.send(Message::Hello(self.config.hello.clone()));
        }
    }

    fn on_message(&mut self, now: Instant, message: Message) {
        // A bye ends the call in every state, and is never answered with one
        // (PROTOCOL.md 6.2).
        if let Message::Bye(bye) = message {
            let outcome = match (&self.phase, bye.reason) {
                (Phase::Live, ByeReason::Hangup) => Outcome::Ended(EndReason::PeerHungUp(bye.text)),
                _ => Outcome::Failed(CallError::PeerEnded(bye)),
            };
            self.end(None, outcome);
            return;
        }
        match (&self.phase, message) {
            (Phase::AwaitingHello, Message::Hello(hello)) => self.on_hello(now, hello),
            (Phase::AwaitingHello, other) => self.unexpected("hello", &other),
            (Phase::AwaitingAccept, Message::Accept(Accept { .. })) => self.connected(now),
            (Phase::AwaitingAccept | Phase::Live, Message::Ping { nonce }) => {
                match self.pings.on_ping(now) {
                    // The link stamps the time as it writes the pong.
                    Ok(()) => self.send(Message::Pong {
                        nonce,
                        time_us: None,
                    }),
                    Err(flood) => self.end(Some(flood.bye()), Outcome::Failed(flood.into())),
                }
            }
            (Phase::AwaitingAccept, Message::Pong { .. }) => {}
            (Phase::AwaitingAccept, Message::Camera { on }) => self.peer_camera_on = on,
            (Phase::AwaitingAccept | Phase::Live, Message::Microphone { on }) => {
                self.actions.push_back(Action::PeerMicrophone(on))
            }
            // Before accept no video flows: nothing to make a keyframe of.
            (Phase::AwaitingAccept, Message::Keyframe) => {}
            (Phase::AwaitingAccept, other) => self.unexpected("accept", &other),
            (Phase::Live, Message::Pong { nonce, time_us }) => {
                // The nonce comes back from the peer: a made-up one must not
                // overflow the clock (no RTT is better than a panic).
                if let Some(sent) = self.epoch.checked_add(Duration::from_micros(nonce)) {
                    let rtt = now.saturating_duration_since(sent);
                    self.actions.push_back(Action::RoundTrip {
                        rtt: rtt.max(Duration::from_micros(1)),
                        peer_time_us: time_us,
                    });
                }
            }
            (Phase::Live, Message::Camera { on }) => self.actions.push_back(Action::PeerCamera(on)),
            (Phase::Live, Message::Keyframe) => self.actions.push_back(Action::MakeKeyframe),
            // The session (protocol/validate.rs) refuses a second hello or
            // accept before they get here; video goes around us; bye was
            // taken above.
            (
                Phase::Live,
                Message::Hello(_)
                | Message::Accept(_)
                | Message::Video(_)
                | Message::VideoPart(_)
                | Message::Audio(_)
                | Message::Bye(_),
            ) => {}
            (Phase::Reconnecting { .. } | Phase::Ended, _) => {}
        }
    }

    fn on_hello(&mut self, now: Instant, hello: Hello) {
        self.peer_hello = Some(hello.clone());
        match self.config.role {
            Role::Caller => self.phase = Phase::AwaitingAccept,
            Role::Listener => {
                let version = self.config.hello.version.min(hello.version);
                self.send(Message::Hello(self.config.hello.clone()));
                self.send(Message::Accept(Accept { version }));
                self.connected(now);
            }
        }
    }

    /// Asks the peer for a keyframe, unless the call's version has no
    /// such message or we asked within `KEYFRAME_REQUEST_INTERVAL`
    /// (PROTOCOL.md 5.7).
    fn ask_for_keyframe(&mut self, now: Instant) {
        if self.phase != Phase::Live || self.version < 3 {
            return;
        }
        if self
            .last_keyframe_request
            .is_some_and(|last| now < last + KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        self.last_keyframe_request = Some(now);
        self.send(Message::Keyframe);
    }

    fn connected(&mut self, now: Instant) {
        let Some(hello) = self.peer_hello.clone() else {
            return self.unexpected("hello", &Message::Accept(Accept { version: 0 }));
        };
        self.version = self.config.hello.version.min(hello.version);
        self.last_keyframe_request = None;
        self.phase = Phase::Live;
        self.next_ping = now;
        let resumed = std::mem::replace(&mut self.was_live, true);
        // A new connection starts with the peer assuming we are unmuted.
        if !self.microphone_on && self.version >= AUDIO_VERSION {
            self.send(Message::Microphone { on: false });
        }
        self.actions.push_back(Action::Connected {
            intro: PeerIntro {
                hello,
                camera_on: self.peer_camera_on,
            },
            resumed,
        });
        self.on_tick(now);
    }

    fn on_tick(&mut self, now: Instant) {
        match self.phase.clone() {
            Phase::AwaitingHello | Phase::AwaitingAccept if now >= self.hello_deadline => {
                let error = CallError::HelloTimeout(HELLO_TIMEOUT);
                self.end(error.bye(), Outcome::Failed(error));
            }
            Phase::Live if now >= self.last_heard + self.config.peer_timeout => {
                self.on_link_lost(now, CallError::PeerVanished(self.config.peer_timeout));
            }
            Phase::Live if now >= self.next_ping => {
                let nonce = now.saturating_duration_since(self.epoch).as_micros() as u64;
                self.send(Message::Ping { nonce });
                // On a grid, so a late tick does not drift the pings.
                while self.next_ping <= now {
                    self.next_ping += PING_INTERVAL;
                }
            }
            Phase::Reconnecting { since, .. } if now >= since + self.config.reconnect_window => {
                let error = CallError::ConnectionLost(format!(
                    "the link dropped and did not come back within {} s",
                    self.config.reconnect_window.as_secs()
                ));
                self.end(None, Outcome::Failed(error));
            }
            _ => {}
        }
    }

    /// The link is gone (broken, closed without bye, or silent): reconnect
    /// if the call was live and reconnecting is on, else end with `error`.
    fn on_link_lost(&mut self, now: Instant, error: CallError) {
        match self.phase.clone() {
            Phase::Live if !self.config.reconnect_window.is_zero() => {
                self.phase = Phase::Reconnecting {
                    since: now,
                    attempt: 1,
                };
                self.actions.push_back(Action::Reconnect {
                    attempt: 1,
                    after: FIRST_RECONNECT_BACKOFF,
                });
            }
            // A redial that failed: try again, waiting longer each time.
            Phase::Reconnecting { since, attempt } => {
                let attempt = attempt + 1;
                self.phase = Phase::Reconnecting { since, attempt };
                self.actions.push_back(Action::Reconnect {
                    attempt,
                    after: backoff(attempt),
                });
            }
            // A silent peer may still read: it is told why we leave.
            _ => {
                let bye = match &error {
                    CallError::PeerVanished(_) => error.bye(),
                    _ => None,
                };
                self.end(bye, Outcome::Failed(error));
            }
        }
    }

    fn unexpected(&mut self, wanted: &str, got: &Message) {
        let error = CallError::UnexpectedMessage {
            wanted: wanted.to_owned(),
            got: got.kind(),
        };
        self.end(error.bye(), Outcome::Failed(error));
    }

    fn send(&mut self, message: Message) {
        self.actions.push_back(Action::Send(message));
    }

    fn end(&mut self, bye: Option<Bye>, outcome: Outcome) {
        self.phase = Phase::Ended;
        self.actions.push_back(Action::End { bye, outcome });
    }
}

/// The wait before redial number `attempt` (from 1): doubling, capped.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    FIRST_RECONNECT_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_RECONNECT_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::handshake::local_hello;
    use crate::protocol::limits::MAX_PINGS_PER_SECOND;

    fn machine(role: Role, reconnect: Duration) -> (CallMachine, Instant) {
        let now = Instant::now();
        let config = MachineConfig {
            reconnect_window: reconnect,
            ..MachineConfig::new(role, local_hello("Us"))
        };
        (CallMachine::new(config, now), now)
    }

    fn drain(m: &mut CallMachine) -> Vec<Action> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Send(m) => format!("send {}", m.kind()),
                Action::Connected { resumed, .. } => format!("connected resumed={resumed}"),
                Action::PeerCamera(on) => format!("camera {on}"),
                Action::PeerMicrophone(on) => format!("microphone {on}"),
                Action::RoundTrip { .. } => "rtt".into(),
                Action::MakeKeyframe => "make keyframe".into(),
                Action::Reconnect { attempt, .. } => format!("reconnect {attempt}"),
                Action::End { bye, outcome } => format!(
                    "end bye={} {}",
                    bye.as_ref().map_or("none", |b| b.reason.code()),
                    match outcome {
                        Outcome::Ended(r) => format!("ended: {r}"),
                        Outcome::Failed(e) => format!("failed: {e}"),
                    }
                ),
            })
            .collect()
    }

    fn peer_hello() -> Message {
        Message::Hello(local_hello("Them"))
    }

    /// A caller through its handshake to a live call.
    fn live_caller(reconnect: Duration) -> (CallMachine, Instant) {
        let (mut m, now) = machine(Role::Caller, reconnect);
        m.handle(now, Event::Received(peer_hello()));
        m.handle(now, Event::Received(Message::Accept(Accept { version: 2 })));
        drain(&mut m);
        (m, now)
    }

    #[test]
    fn the_caller_says_hello_first_and_is_connected_only_at_accept() {
        let (mut m, now) = machine(Role::Caller, Duration::ZERO);
        assert_eq!(kinds(&drain(&mut m)), ["send hello"]);
        m.handle(now, Event::Received(peer_hello()));
        assert_eq!(m.phase(), &Phase::AwaitingAccept);
        assert!(drain(&mut m).is_empty());
        // Between hello and accept PROTOCOL.md allows ping, pong and camera.
        m.handle(now, Event::Received(Message::Ping { nonce: 7 }));
        m.handle(
            now,
            Event::Received(Message::Pong {
                nonce: 1,
                time_us: None,
            }),
        );
        m.handle(now, Event::Received(Message::Camera { on: false }));
        assert_eq!(kinds(&drain(&mut m)), ["send pong"]);
        m.handle(now, Event::Received(Message::Accept(Accept { version: 2 })));
        let actions = drain(&mut m);
        assert_eq!(kinds(&actions), ["connected resumed=false", "send ping"]);
        match &actions[0] {
            Action::Connected { intro, .. } => {
                assert_eq!(intro.hello.display_name, "Them");
                assert!(!intro.camera_on, "the camera message before accept counts");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.phase(), &Phase::Live);
    }

    #[test]
    fn keyframe_requests_go_both_ways_spaced_and_only_in_version_3() {
        let (mut m, now) = live_caller(Duration::ZERO);
        m.handle(now, Event::Received(Message::Keyframe));
        assert_eq!(kinds(&drain(&mut m)), ["make keyframe"]);
        // Our decoder asks: once, then not again within the interval.
        m.handle(now, Event::WantKeyframe);
        m.handle(now + KEYFRAME_REQUEST_INTERVAL / 2, Event::WantKeyframe);
        assert_eq!(kinds(&drain(&mut m)), ["send keyframe"]);
        m.handle(now + KEYFRAME_REQUEST_INTERVAL, Event::WantKeyframe);
        assert_eq!(kinds(&drain(&mut m)), ["send keyframe"]);
        // A version 2 peer does not know the message: never sent to it.
        let (mut old, now) = machine(Role::Listener, Duration::ZERO);
        let mut hello = local_hello("Old");
        hello.version = 2;
        old.handle(now, Event::Received(Message::Hello(hello)));
        drain(&mut old);
        old.handle(now, Event::WantKeyframe);
        assert!(drain(&mut old).is_empty());
        // Nor before the call is live.
        let (mut early, now) = machine(Role::Caller, Duration::ZERO);
        drain(&mut early);
        early.handle(now, Event::WantKeyframe);
        assert!(drain(&mut early).is_empty());
    }

    #[test]
    fn the_listener_answers_a_hello_with_its_hello_and_accept() {
        let (mut m, now) = machine(Role::Listener, Duration::ZERO);
        assert!(
            drain(&mut m).is_empty(),
            "the listener waits for the caller"
        );
        m.handle(now, Event::Received(peer_hello()));
        assert_eq!(
            kinds(&drain(&mut m)),
            [
                "send hello",
                "send accept",
                "connected resumed=false",
                "send ping"
            ]
        );
    }

    #[test]
    fn anything_but_hello_first_is_a_protocol_error() {
        for role in [Role::Caller, Role::Listener] {
            let (mut m, now) = machine(role, Duration::ZERO);
            drain(&mut m);
            m.handle(now, Event::Received(Message::Ping { nonce: 1 }));
            let actions = kinds(&drain(&mut m));
            assert_eq!(actions.len(), 1);
            assert!(
                actions[0].starts_with("end bye=protocol_error failed: expected the peer's hello"),
                "{actions:?}"
            );
        }
    }

    #[test]
    fn a_caller_waiting_for_accept_refuses_anything_else() {
        let (mut m, now) = machine(Role::Caller, Duration::ZERO);
        m.handle(now, Event::Received(peer_hello()));
        drain(&mut m);
        m.handle(now, Event::Received(peer_hello()));
        let actions = kinds(&drain(&mut m));
        assert!(actions[0].starts_with("end bye=protocol_error failed: expected the peer's accept"));
    }

    #[test]
    fn no_handshake_within_the_hello_timeout_ends_with_a_protocol_error() {
        for role in [Role::Caller, Role::Listener] {
            let (mut m, now) = machine(role, Duration::from_secs(30));
            drain(&mut m);
            assert_eq!(m.next_deadline(), Some(now + HELLO_TIMEOUT));
            m.handle(now + HELLO_TIMEOUT - Duration::from_millis(1), Event::Tick);
            assert!(drain(&mut m).is_empty(), "not yet");
            m.handle(now + HELLO_TIMEOUT, Event::Tick);
            let actions = kinds(&drain(&mut m));
            assert_eq!(actions.len(), 1);
            assert!(
                actions[0].starts_with("end bye=protocol_error failed: the peer did not complete")
            );
            // A handshake that never finished is not redialled.
            assert_eq!(m.phase(), &Phase::Ended);
        }
    }

    #[test]
    fn a_peer_silent_for_the_peer_timeout_is_gone_but_bytes_keep_it_alive() {
        let (mut m, now) = live_caller(Duration::ZERO);
        let timeout = PEER_TIMEOUT;
        // Part of a large frame arrives just before the timeout.
        m.handle(now + timeout - Duration::from_millis(10), Event::Heard);
        m.handle(now + timeout, Event::Tick);
        assert!(
            !kinds(&drain(&mut m)).iter().any(|a| a.starts_with("end")),
            "bytes were heard"
        );
        let silent_until = now + timeout - Duration::from_millis(10) + timeout;
        assert!(m.next_deadline().is_some_and(|d| d <= silent_until));
        m.handle(silent_until, Event::Tick);
        let actions = kinds(&drain(&mut m));
        assert!(
            actions
                .last()
                .is_some_and(|a| a.starts_with("end bye=other failed: no word from the peer")),
            "{actions:?}"
        );
    }

    #[test]
    fn pings_go_out_every_interval_and_pongs_give_the_rtt() {
        let (mut m, now) = live_caller(Duration::ZERO);
        for second in 1..=3u32 {
            let at = now + PING_INTERVAL * second;
            let pong = Message::Pong {
                nonce: 0,
                time_us: Some(7),
            };
            m.handle(at, Event::Received(pong));
            m.handle(at, Event::Tick);
            let actions = drain(&mut m);
            assert_eq!(kinds(&actions), ["rtt", "send ping"]);
            match &actions[0] {
                Action::RoundTrip { rtt, peer_time_us } => {
                    assert_eq!(*rtt, PING_INTERVAL * second);
                    assert_eq!(*peer_time_us, Some(7));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_made_up_pong_nonce_is_harmless() {
        let (mut m, now) = live_caller(Duration::ZERO);
        let pong = Message::Pong {
            nonce: u64::MAX,
            time_us: Some(u64::MAX),
        };
        m.handle(now, Event::Received(pong));
        assert!(drain(&mut m)
            .iter()
            .all(|a| !matches!(a, Action::End { .. })));
    }

    #[test]
    fn a_ping_flood_ends_the_call_with_protocol_error() {
        let (mut m, now) = live_caller(Duration::ZERO);
        for n in 0..MAX_PINGS_PER_SECOND {
            m.handle(now, Event::Received(Message::Ping { nonce: n.into() }));
        }
        assert_eq!(drain(&mut m).len(), MAX_PINGS_PER_SECOND as usize);
        m.handle(now, Event::Received(Message::Ping { nonce: 0 }));
        let actions = kinds(&drain(&mut m));
        assert!(
            actions[0].starts_with("end bye=protocol_error"),
            "{actions:?}"
        );
    }

    #[test]
    fn bye_ends_the_call_in_every_state_and_is_not_answered() {
        let hangup = || Message::Bye(Bye::new(ByeReason::Hangup, "bye now"));
        type Start = Box<dyn Fn() -> (CallMachine, Instant)>;
        let states: Vec<(&str, Start)> = vec![
            (
                "caller awaiting hello",
                Box::new(|| machine(Role::Caller, Duration::ZERO)),
            ),
            (
                "listener awaiting hello",
                Box::new(|| machine(Role::Listener, Duration::ZERO)),
            ),
            (
                "caller awaiting accept",
                Box::new(|| {
                    let (mut m, now) = machine(Role::Caller, Duration::ZERO);
                    m.handle(now, Event::Received(peer_hello()));
                    (m, now)
                }),
            ),
            ("live", Box::new(|| live_caller(Duration::ZERO))),
        ];
        for (name, start) in states {
            let (mut m, now) = start();
            let live = m.phase() == &Phase::Live;
            drain(&mut m);
            m.handle(now, Event::Received(hangup()));
            let actions = kinds(&drain(&mut m));
            let expected = if live {
                "end bye=none ended: peer hung up: bye now"
            } else {
                "end bye=none failed: the peer ended the call (hangup): bye now"
            };
            assert_eq!(actions, [expected], "{name}");
            // Nothing after the end, whatever happens.
            m.handle(now, Event::Received(Message::Ping { nonce: 1 }));
            m.handle(now + HELLO_TIMEOUT * 10, Event::Tick);
            assert!(drain(&mut m).is_empty(), "{name}");
            assert_eq!(m.next_deadline(), None);
        }
    }

    #[test]
    fn hanging_up_says_bye_except_when_the_link_is_down() {
        let (mut m, now) = live_caller(Duration::ZERO);
        m.handle(now, Event::Stop(EndReason::HungUp));
        assert_eq!(kinds(&drain(&mut m)), ["end bye=hangup ended: hung up"]);

        let (mut m, now) = live_caller(Duration::from_secs(30));
        m.handle(now, Event::LinkLost("reset".into()));
        drain(&mut m);
        m.handle(now, Event::Stop(EndReason::Interrupted));
        assert_eq!(kinds(&drain(&mut m)), ["end bye=none ended: interrupted"]);
    }

    #[test]
    fn a_dropped_link_is_redialled_with_growing_backoff_until_the_window_closes() {
        let window = Duration::from_secs(30);
        let (mut m, now) = live_caller(window);
        m.handle(now, Event::LinkLost("connection reset".into()));
        assert_eq!(kinds(&drain(&mut m)), ["reconnect 1"]);
        assert!(matches!(m.phase(), Phase::Reconnecting { .. }));
        // Camera changes while the link is down are not sent on a dead link.
        m.handle(now, Event::SetCamera(false));
        assert!(drain(&mut m).is_empty());
        let mut waits = Vec::new();
        for _ in 0..5 {
            m.handle(now, Event::LinkLost("connection refused".into()));
            match drain(&mut m).pop() {
                Some(Action::Reconnect { after, .. }) => waits.push(after),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            waits,
            [500, 1000, 2000, 2000, 2000].map(Duration::from_millis),
            "doubling from {FIRST_RECONNECT_BACKOFF:?}, capped at {MAX_RECONNECT_BACKOFF:?}"
        );
        assert_eq!(m.next_deadline(), Some(now + window));
        m.handle(now + window, Event::Tick);
        let actions = kinds(&drain(&mut m));
        assert_eq!(actions.len(), 1);
        assert!(
            actions[0].starts_with("end bye=none failed: connection lost"),
            "{actions:?}"
        );
    }

    #[test]
    fn a_relinked_call_shakes_hands_again_and_resumes() {
        let (mut m, now) = live_caller(Duration::from_secs(30));
        m.handle(now, Event::LinkLost("reset".into()));
        drain(&mut m);
        let later = now + Duration::from_secs(3);
        m.handle(later, Event::Relinked);
        assert_eq!(kinds(&drain(&mut m)), ["send hello"]);
        m.handle(later, Event::Received(peer_hello()));
        m.handle(
            later,
            Event::Received(Message::Accept(Accept { version: 2 })),
        );
        assert_eq!(
            kinds(&drain(&mut m)),
            ["connected resumed=true", "send ping"]
        );
        // The re-handshake has its own hello timeout.
        assert!(m.next_deadline().is_some_and(|d| d > later));
    }

    #[test]
    fn a_call_resumed_on_a_link_that_shook_hands_is_live_again_without_a_new_hello() {
        let (mut m, now) = live_caller(Duration::from_secs(30));
        // Not reconnecting: a stray resume changes nothing.
        let intro = || PeerIntro {
            hello: local_hello("Peer"),
            camera_on: false,
        };
        m.handle(now, Event::Resumed(intro()));
        assert!(drain(&mut m).is_empty());
        m.handle(now, Event::LinkLost("reset".into()));
        drain(&mut m);
        let later = now + Duration::from_secs(2);
        m.handle(later, Event::Resumed(intro()));
        assert_eq!(
            kinds(&drain(&mut m)),
            ["connected resumed=true", "send ping"]
        );
        assert_eq!(m.phase(), &Phase::Live);
        assert_eq!(m.next_deadline(), Some(later + PING_INTERVAL));
    }

    #[test]
    fn a_silent_peer_is_redialled_when_reconnect_is_on() {
        let (mut m, now) = live_caller(Duration::from_secs(30));
        m.handle(now + PEER_TIMEOUT, Event::Tick);
        assert_eq!(kinds(&drain(&mut m)), ["reconnect 1"]);
    }

    #[test]
    fn a_link_lost_during_the_handshake_or_with_reconnect_off_ends_the_call() {
        let (mut m, now) = machine(Role::Caller, Duration::from_secs(30));
        drain(&mut m);
        m.handle(now, Event::LinkLost("reset".into()));
        assert_eq!(
            kinds(&drain(&mut m)),
            ["end bye=none failed: connection lost: reset"]
        );
        let (mut m, now) = live_caller(Duration::ZERO);
        m.handle(now, Event::LinkLost("reset".into()));
        assert_eq!(
            kinds(&drain(&mut m)),
            ["end bye=none failed: connection lost: reset"]
        );
    }

    #[test]
    fn a_local_failure_tells_the_peer_why() {
        let (mut m, now) = live_caller(Duration::ZERO);
        m.handle(now, Event::Failed(CallError::Internal("disk full".into())));
        assert_eq!(
            kinds(&drain(&mut m)),
            ["end bye=internal_error failed: disk full"]
        );
    }
}
