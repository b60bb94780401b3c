//! The real call state driven by generated peers: every case runs vchat's
//! own handshake and pipeline (`call::setup::handshake_and_run`, with a test
//! pattern source, the reader, writer, media and decoder stages) against a
//! peer that sends a generated sequence of messages and raw bytes, in either
//! role, over an in-memory pipe. Whatever the peer sends, vchat must end the
//! call by itself (never hang) and never panic, in any task or thread: a
//! panic hook counts panics, since tokio would otherwise turn a panicking
//! task into an ordinary error.
//!
//! CI runs a few dozen cases; a long run (recorded in SECURITY.md):
//! `PROPTEST_CASES=30000 cargo test --test call_state_props`.

mod protocol_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use protocol_support::{encoded, hello};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use vchat::call::handshake::local_hello;
use vchat::call::pipeline::PipelineConfig;
use vchat::call::setup::{handshake_and_run, Plan};
use vchat::call::CallError;
use vchat::media::{Fps, Quality, Size, TestPatternSource};
use vchat::protocol::{
    Accept, Bye, ByeReason, Connection, Hello, Message, PixelFormat, Role, Video,
};
use vchat::ui::{DisplayState, UiHandle};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// What the generated peer does, step by step.
#[derive(Debug, Clone)]
enum Step {
    /// A message as vchat's encoder writes it (bypassing the peer's own
    /// session rules, so it may be out of order).
    Send(Message),
    /// Arbitrary bytes: broken frames, bad CBOR, partial prefixes.
    Raw(Vec<u8>),
    /// Let vchat run a little (its stages are threads and tasks).
    Yield,
}

fn format() -> impl Strategy<Value = PixelFormat> {
    prop::sample::select(PixelFormat::ALL.to_vec())
}

fn a_hello() -> impl Strategy<Value = Hello> {
    // Limits below the 32x24 we capture as often as above it: the sender
    // must scale down, keeping the shape.
    let side = || prop_oneof![1u32..40, 1u32..5000];
    (
        0u32..4,
        prop::sample::subsequence(PixelFormat::ALL.to_vec(), 0..=3),
        side(),
        side(),
        "[a-zA-Z ]{0,8}",
    )
        .prop_map(|(version, codecs, max_width, max_height, name)| {
            let mut h = hello(&name);
            h.version = version;
            h.receive.codecs = codecs;
            h.receive.max_width = max_width;
            h.receive.max_height = max_height;
            h
        })
}

fn a_video() -> impl Strategy<Value = Video> {
    (
        0u64..8,
        1u32..20,
        1u32..20,
        format(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(seq, width, height, format, exact, junk)| {
            // Raw payloads of the right length usually, sometimes not;
            // JPEG payloads are whatever bytes (rarely a real JPEG).
            let payload = match format.raw_len(width, height) {
                Some(len) if exact => Bytes::from(vec![0x55; len]),
                _ => Bytes::from(junk),
            };
            Video {
                seq,
                capture_time_us: seq * 33_000,
                width,
                height,
                format,
                payload,
                total_len: None,
            }
        })
}

fn a_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        1 => a_hello().prop_map(Message::Hello),
        1 => (0u32..4).prop_map(|version| Message::Accept(Accept { version })),
        4 => a_video().prop_map(Message::Video),
        2 => any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        1 => any::<(u64, Option<u64>)>().prop_map(|(nonce, time_us)| Message::Pong { nonce, time_us }),
        1 => any::<bool>().prop_map(|on| Message::Camera { on }),
        1 => prop::sample::select(vec![ByeReason::Hangup, ByeReason::Busy, ByeReason::ProtocolError, ByeReason::Other])
            .prop_map(|reason| Message::Bye(Bye::new(reason, "generated"))),
    ]
}

fn a_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => a_message().prop_map(Step::Send),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Step::Raw),
        2 => Just(Step::Yield),
    ]
}

/// A peer: usually a proper start (so the call itself gets exercised), then
/// generated steps; vchat in either role.
fn a_case() -> impl Strategy<Value = (Role, Option<Hello>, Vec<Step>, bool)> {
    let valid_hello = a_hello().prop_map(|mut h| {
        h.version = vchat::protocol::PROTOCOL_VERSION;
        h
    });
    (
        prop::sample::select(vec![Role::Caller, Role::Listener]),
        prop::option::weighted(0.8, valid_hello),
        prop::collection::vec(a_step(), 0..24),
        any::<bool>(),
    )
}

/// The peer's proper start for vchat in `ours`: its hello, and an accept
/// when vchat is the caller (the accept's version must match the hellos').
fn proper_start(ours: Role, their_hello: Hello) -> Vec<u8> {
    let mut bytes = frame_bytes(&Message::Hello(their_hello));
    if ours == Role::Caller {
        let version = vchat::protocol::PROTOCOL_VERSION;
        bytes.extend_from_slice(&encoded(&Message::Accept(Accept { version })));
    }
    bytes
}

fn frame_bytes(message: &Message) -> Vec<u8> {
    // The encoder refuses messages beyond the limits; send those as they
    // would arrive from a peer that does not check: a length and junk.
    match vchat::protocol::encode_frame(message) {
        Ok(frame) => [frame.head.as_ref(), frame.payload.as_ref()].concat(),
        Err(_) => vec![0, 0, 0, 3, 0x82, 0x61, 0x78],
    }
}

/// How long vchat may take to end the call on its own once the peer has
/// done its steps and closed: the hello timeout is the longest wait.
const END_LIMIT: Duration = Duration::from_secs(30);

/// `quiet_end`: after its steps the peer goes silent instead of closing, so
/// the call runs on until vchat's peer timeout ends it.
async fn run_case(
    ours: Role,
    start: Option<Hello>,
    steps: Vec<Step>,
    quiet_end: bool,
) -> Result<(), TestCaseError> {
    let (mine, mut theirs) = tokio::io::duplex(256 * 1024);
    let plan = Plan {
        hello: local_hello("Us"),
        wanted: PixelFormat::Jpeg,
        config: PipelineConfig {
            quality: Quality::new(50).unwrap(),
            // Short, so a peer that goes quiet ends the case quickly.
            peer_timeout: Duration::from_millis(300),
            ..PipelineConfig::for_peer("peer")
        },
        on_video_taken: None,
    };
    let source = Box::new(TestPatternSource::new(
        Size::new(32, 24).unwrap(),
        Fps::new(30).unwrap(),
    ));
    let (keep, commands) = mpsc::unbounded_channel();
    let vchat_side = tokio::spawn(async move {
        let _keep = keep;
        let ui = UiHandle::headless(DisplayState::new("peer", ""));
        let map_io = |e: std::io::Error| CallError::ConnectionLost(e.to_string());
        handshake_and_run(
            Connection::new(mine, ours),
            plan,
            map_io,
            source,
            ui,
            commands,
        )
        .await
    });
    let (mut read_half, mut write_half) = tokio::io::split(&mut theirs);
    let peer = async {
        if let Some(their_hello) = start.clone() {
            let _ = write_half.write_all(&proper_start(ours, their_hello)).await;
        }
        for step in steps {
            let written = match step {
                Step::Send(message) => write_half.write_all(&frame_bytes(&message)).await,
                Step::Raw(bytes) => write_half.write_all(&bytes).await,
                Step::Yield => {
                    tokio::task::yield_now().await;
                    Ok(())
                }
            };
            if written.is_err() {
                break; // vchat closed: it ended the call.
            }
        }
        // Without a proper start a quiet peer would cost the whole hello
        // timeout; with one, the pipeline runs until the peer timeout.
        if !(quiet_end && start.is_some()) {
            let _ = write_half.shutdown().await;
        }
        write_half
    };
    // Read everything vchat sends, so its writes never block on us.
    let drain = async {
        let mut sink = vec![0u8; 64 * 1024];
        while let Ok(n) = read_half.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    // The drain ends when vchat drops its end of the pipe: when the call ended.
    let exchanged = tokio::time::timeout(END_LIMIT, async { tokio::join!(peer, drain) }).await;
    prop_assert!(
        exchanged.is_ok(),
        "vchat did not end the call within {END_LIMIT:?}"
    );
    let ended = tokio::time::timeout(END_LIMIT, vchat_side).await;
    prop_assert!(
        ended.is_ok(),
        "vchat did not end the call within {END_LIMIT:?}"
    );
    let joined = ended.unwrap();
    prop_assert!(joined.is_ok(), "vchat's call task panicked: {joined:?}");
    prop_assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a panic in one of vchat's stages"
    );
    Ok(())
}

/// 48 cases in CI, or `PROPTEST_CASES` for a long run (an explicit
/// `cases` would otherwise override the variable proptest reads).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_peer_can_make_the_call_panic_or_hang((ours, start, steps, quiet_end) in a_case()) {
        count_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_case(ours, start, steps, quiet_end))?;
    }
}
