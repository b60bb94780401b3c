//! `--max-latency` (issue 13): a frame of ours that is already older than
//! the budget when the source hands it over (a driver's queue, a stalled
//! file) is dropped, never sent, and counted (the media thread drops it
//! before encoding, the writer before sending); fresh frames from the same
//! source go out. vchat's real set-up and pipeline run on one end of an
//! in-memory pipe; a scripted peer answers the handshake and counts the
//! video messages until vchat's bye.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vchat::call::handshake::local_hello;
use vchat::call::pipeline::{CallSummary, PipelineConfig, DEFAULT_MAX_LATENCY};
use vchat::call::setup::{handshake_and_run, Plan};
use vchat::call::{CallError, PEER_TIMEOUT};
use vchat::media::{
    test_pattern, CapturedFrame, Fps, FrameContent, FrameSource, MediaError, Quality,
};
use vchat::protocol::{Connection, Message, PixelFormat, Role};
use vchat::ui::{DisplayState, UiHandle};

/// A hang guard for the whole call.
const GUARD: Duration = Duration::from_secs(30);

/// Test-pattern frames every 10 ms, each stamped as captured `age` ago.
struct AgedSource {
    age: Duration,
    sequence: u64,
}

impl FrameSource for AgedSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        // Paces the source like a camera; it synchronises nothing.
        std::thread::sleep(Duration::from_millis(10));
        self.sequence += 1;
        Ok(CapturedFrame {
            captured_at: Instant::now() - self.age,
            sequence: self.sequence,
            content: FrameContent::Picture(test_pattern(self.sequence, 64, 48)?),
        })
    }

    fn describe(&self) -> String {
        format!("test pattern {:?} old", self.age)
    }
}

/// A half-second call whose source hands out frames `age` old; returns the
/// video messages the peer received and vchat's summary.
async fn call_with_frames_aged(age: Duration) -> (u64, CallSummary) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let plan = Plan {
        hello: local_hello("Us"),
        wanted: PixelFormat::Jpeg,
        config: PipelineConfig {
            quality: Quality::new(80).unwrap(),
            fps: Fps::new(30).unwrap(),
            record: None,
            max_frames: None,
            duration: Some(Duration::from_millis(500)),
            stats: None,
            peer_timeout: PEER_TIMEOUT,
            peer_name: "peer".into(),
            max_latency: DEFAULT_MAX_LATENCY,
        },
        on_video_taken: None,
    };
    let (_commands_tx, commands) = mpsc::unbounded_channel();
    let source = AgedSource { age, sequence: 0 };
    let call = tokio::spawn(async move {
        let ui = UiHandle::headless(DisplayState::new("peer", ""));
        let conn = Connection::new(ours, Role::Listener);
        let map_io = |e: std::io::Error| CallError::ConnectionLost(e.to_string());
        handshake_and_run(conn, plan, map_io, Box::new(source), ui, commands).await
    });
    let peer = tokio::spawn(async move {
        let mut conn = Connection::new(theirs, Role::Caller);
        conn.write_message(&Message::Hello(local_hello("Them")))
            .await
            .unwrap();
        let mut videos = 0u64;
        loop {
            match conn.read_message().await.unwrap() {
                Some(Message::Video(_)) => videos += 1,
                Some(Message::Bye(_)) => {
                    conn.shutdown().await.unwrap();
                    return videos;
                }
                Some(_) => continue,
                None => panic!("vchat closed without a bye"),
            }
        }
    });
    let summary = tokio::time::timeout(GUARD, call)
        .await
        .expect("the call ends at its duration")
        .unwrap()
        .expect("the call ends normally");
    let videos = tokio::time::timeout(GUARD, peer).await.unwrap().unwrap();
    (videos, summary)
}

#[tokio::test]
async fn frames_older_than_the_budget_are_dropped_unsent_and_counted() {
    let (videos, summary) = call_with_frames_aged(DEFAULT_MAX_LATENCY * 2).await;
    assert_eq!(videos, 0, "stale frames were sent");
    assert_eq!(summary.totals.frames_sent, 0);
    assert!(summary.totals.too_late >= 10, "{:?}", summary.totals);
}

#[tokio::test]
async fn fresh_frames_from_the_same_source_go_out() {
    let (videos, summary) = call_with_frames_aged(Duration::ZERO).await;
    assert!(videos >= 10, "{videos} frames sent in half a second");
    assert_eq!(summary.totals.too_late, 0, "{:?}", summary.totals);
}
