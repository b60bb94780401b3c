//! `--max-latency` (issue 13): a frame of ours that is already older than
//! the budget when the source hands it over (a driver's queue, a stalled
//! file) is dropped, never sent, and counted (the media thread drops it
//! before encoding, the writer before sending); fresh frames from the same
//! source go out. vchat's real set-up and pipeline run on one end of an
//! in-memory pipe; a scripted peer answers the handshake and counts the
//! video messages until vchat's bye.

mod common;

use std::time::{Duration, Instant};

use vchat::call::pipeline::{CallSummary, PipelineConfig, DEFAULT_MAX_LATENCY};
use vchat::media::{test_pattern, CapturedFrame, FrameContent, FrameSource, MediaError};
use vchat::protocol::Message;

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

/// A two-second call whose source hands out frames `age` old; returns the
/// video messages the peer received and vchat's summary. (Half a second
/// left too few frames on a loaded machine for the counts below.)
async fn call_with_frames_aged(age: Duration) -> (u64, CallSummary) {
    let config = PipelineConfig {
        duration: Some(Duration::from_secs(2)),
        ..PipelineConfig::for_peer("peer")
    };
    let source = AgedSource { age, sequence: 0 };
    let common::in_memory::InMemoryCall {
        call,
        commands: _commands,
        peer: mut conn,
    } = common::in_memory::start(config, Box::new(source)).await;
    let peer = tokio::spawn(async move {
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
    assert!(videos >= 10, "{videos} frames sent in two seconds");
    assert_eq!(summary.totals.too_late, 0, "{:?}", summary.totals);
}
