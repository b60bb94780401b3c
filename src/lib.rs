//! vchat: private peer-to-peer video chat over pinned mutual TLS 1.3.
//!
//! # Layout
//!
//! Each folder is one part of the program with one job:
//!
//! - [`identity`]: who we are and whom we trust. Makes and loads the local
//!   identity (certificate + private key) and the set of pinned peers, and
//!   computes the fingerprints people compare out of band.
//! - [`net`]: the pinned mutual-TLS channel. Builds TLS 1.3-only rustls
//!   configurations whose verifiers accept exactly the pinned certificates,
//!   dials and listens with handshake timeouts and a bound on unauthenticated
//!   connections.
//! - [`protocol`]: what the peers say once the channel is up. A pure, I/O-free
//!   codec (length-prefixed CBOR messages) plus a `Connection` that owns the
//!   stream.
//! - [`media`]: where pictures and voice come from and how they travel:
//!   camera, test pattern and Y4M file sources, raw, JPEG and H.264 codecs,
//!   Y4M recording; microphone, tone and WAV sources, echo cancellation,
//!   Opus, the jitter buffer and playout ([`media::audio`]).
//! - [`ui`]: the window: the peer large, yourself small, an overlay, keys.
//! - [`call`]: joins the parts: `listen` (call after call), `call` and
//!   `demo`; the call's rules as an I/O-free state machine; the link, media
//!   send and media receive that move video both ways with bounded latency,
//!   and the voice beside them (`call/voice.rs`), by UDP datagram while
//!   that path works (`call/voice_path.rs`).
//! - [`bench`]: `vchat bench`, both peers in one process over loopback with
//!   pre-generated frames: throughput, latency, CPU and memory per size and
//!   codec, against a bare TLS stream carrying the same bytes.
//!
//! # Data flow
//!
//! ```text
//!  send.rs: media thread                 link.rs: writer task (owns the write half)
//!  source ─► encoder ─► [newest frame] ─► control > pong > voice > video ─► Connection ─► TLS ─► TCP ─┐
//!  (camera/test/y4m)                      ▲ bye, camera, ping  ▲   (large frames in parts)          │
//!  voice.rs: audio thread                 │                    │                                    │
//!  mic/tone/wav ─► AEC ─► Opus ─► [queue] ┼────────────────────┘                                    │
//!                                         │                                            the peer
//!                              state.rs: CallMachine (no I/O, time passed in)                │
//!                              hello/accept, pings, liveness, bye, reconnect decision        │
//!                                         ▲ ping, pong, camera, bye, bytes heard             │
//!  receive.rs: decoder thread             │                                                  │
//!  window ◄─ held for the voice ◄─ decoder ◄─ [newest frame] ◄─ link.rs: reader task ◄─ TLS ◄┘
//!  recorder ◄┘          ▲ audio clock                           │ (reassembles parts)
//!  voice.rs: speaker or clock ◄─ playout (jitter buffer, PLC) ◄─┘ voice
//!  WAV recorder, AEC's reference ◄┘
//! ```
//!
//! Voice goes first on the wire (a queue, not a newest-only slot: every
//! 20 ms counts), and a large frame goes in parts of about 20 ms of the
//! link so a packet never waits behind a whole one. The playout publishes
//! the peer's capture time of what the ear hears; pictures wait for it
//! (lip sync), and when pictures lag, the voice waits for them instead.
//! With a microphone and a speaker, what the speaker plays is the echo
//! canceller's reference, taken out of the microphone's sound (AEC).
//!
//! On a direct route the voice also has a UDP path: `call/voice_path.rs`,
//! on a thread of its own ("vchat-voice", so that 50 packets a second each
//! way do not wake the call's network threads), takes the voice queue
//! instead of the writer while datagrams get through
//! both ways, seals each packet (with the two before it) under keys from the
//! TLS session's exporter (`net::voice_datagram_keys`,
//! `protocol::datagram`), and feeds the peer's into the same playout, which
//! keeps the first copy of each packet. A lost TCP segment then no longer
//! holds up the voice; when the datagrams stop, the writer takes the queue
//! again.
//!
//! `net` reaches a peer directly (Happy Eyeballs), through a SOCKS5 proxy,
//! or for an onion address through a tor that `net::tor` starts and drives
//! by its control port; the pinned TLS inside is the same on every route.
//!
//! Every call, whether `listen`, `call`, `demo` or `bench` started it, goes
//! through `call::setup::handshake_and_run`: the state machine drives the
//! hello/accept exchange, then `call::pipeline` runs the tasks and threads
//! above around it. One `CancellationToken` and one `TaskTracker` per call
//! stop them all; a thread stuck in a stalled camera is not waited for.
//! `bench` differs only in its source: pre-generated frames, paced by a
//! camera-like clock for latency runs, or by the link taking each frame
//! (`call::VideoTakenHook`) for throughput runs; the pipeline has no mode
//! of its own for it.
//!
//! `[newest frame]` is a one-slot hand-off ([`media::Latest`]): a stage
//! that falls behind finds only the newest frame, so slowness costs dropped
//! frames, never growing delay. H.264 frames depend on the ones before, so
//! for them the slots never drop: the media thread skips a picture before
//! encoding while the writer still holds the last frame, and the reader
//! waits for the decoder to take a frame before it reads the next (TCP then
//! slows the sender). A decoder that lost frames anyway (a reconnect) waits
//! for a keyframe and asks for one (`keyframe` message); every new link
//! starts with one.
//!
//! Video bytes are neither copied nor allocated per frame by vchat itself: a
//! raw frame moves from the source into its message as shared `Bytes`; the
//! reader reads each large frame into a pooled buffer (`protocol/inbox.rs`)
//! that is reused once the decoder and the window have let go of it; the
//! window shows a raw frame from that buffer. Encryption and the kernel still
//! copy, as for any TLS stream (BENCHMARKS.md has the profile).
//!
//! Trust is established before any application byte flows: both sides present
//! certificates, each side's verifier compares the SHA-256 of the presented
//! certificate with its pins and checks the handshake signature against it.
#![forbid(unsafe_code)]

pub mod bench;
pub mod call;
pub mod identity;
pub mod media;
pub mod net;
pub mod protocol;
pub mod ui;
