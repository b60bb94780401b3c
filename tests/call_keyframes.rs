//! Keyframes (issue 13, PROTOCOL.md 5.3.4 and 5.7): an H.264 call starts
//! with one, a peer's request gets one, and a peer that floods requests
//! gets at most one per `KEYFRAME_REQUEST_INTERVAL`, not a stream of
//! 30 KB pictures. vchat's real set-up and pipeline run on one end of an
//! in-memory pipe; the scripted peer reads every access unit and checks it
//! as a receiver would.

mod common;

use std::time::{Duration, Instant};

use vchat::call::pipeline::PipelineConfig;
use vchat::media::{
    check_access_unit, test_pattern, CapturedFrame, FrameContent, FrameSource, MediaError,
};
use vchat::protocol::limits::KEYFRAME_REQUEST_INTERVAL;
use vchat::protocol::{Message, PixelFormat};

/// A hang guard for the whole call.
const GUARD: Duration = Duration::from_secs(30);

/// Fresh test-pattern frames, paced like a 50 fps camera.
struct Camera {
    sequence: u64,
}

impl FrameSource for Camera {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        // Paces the source like a camera; it synchronises nothing.
        std::thread::sleep(Duration::from_millis(20));
        self.sequence += 1;
        Ok(CapturedFrame {
            captured_at: Instant::now(),
            sequence: self.sequence,
            content: FrameContent::Picture(test_pattern(self.sequence, 160, 120)?),
        })
    }

    fn describe(&self) -> String {
        "test pattern".into()
    }
}

/// Runs a `seconds`-long H.264 call whose peer sends `requests` keyframe
/// requests spread over the call; returns the keyframe flags of the access
/// units received, in order, and vchat's count of keyframes sent.
async fn call_with_requests(seconds: f64, requests: u32) -> (Vec<bool>, u64) {
    let config = PipelineConfig {
        duration: Some(Duration::from_secs_f64(seconds)),
        ..PipelineConfig::for_peer("peer")
    };
    let common::in_memory::InMemoryCall {
        call,
        commands: _commands,
        peer,
    } = common::in_memory::start_sending(
        PixelFormat::H264,
        config,
        Box::new(Camera { sequence: 0 }),
    )
    .await;
    let (mut reader, mut writer) = peer.into_split();
    let reading = tokio::spawn(async move {
        let mut keyframes = Vec::new();
        // Large frames come in parts (version 4): check whole ones.
        let mut frames = vchat::protocol::FrameAssembler::new();
        loop {
            let message = reader.read_message().await.unwrap();
            let Some(message) = message.map(|m| frames.feed(m)) else {
                panic!("vchat closed without a bye");
            };
            match message {
                Some(Message::Video(video)) => {
                    assert_eq!(video.format, PixelFormat::H264);
                    let unit = check_access_unit(&video.payload, video.width, video.height)
                        .expect("a Constrained Baseline access unit");
                    keyframes.push(unit.keyframe);
                }
                Some(Message::Bye(_)) => return keyframes,
                _ => continue,
            }
        }
    });
    let pause = Duration::from_secs_f64(seconds * 0.8 / f64::from(requests.max(1)));
    for _ in 0..requests {
        // Spaces the requests over the call; it synchronises nothing.
        tokio::time::sleep(pause).await;
        if writer.write_message(&Message::Keyframe).await.is_err() {
            break;
        }
    }
    let summary = tokio::time::timeout(GUARD, call)
        .await
        .expect("the call ends at its duration")
        .unwrap()
        .expect("the call ends normally");
    let keyframes = tokio::time::timeout(GUARD, reading).await.unwrap().unwrap();
    (keyframes, summary.totals.keyframes_sent)
}

#[tokio::test]
async fn the_stream_starts_with_a_keyframe_and_a_request_gets_one() {
    let (keyframes, sent) = call_with_requests(2.0, 1).await;
    assert!(keyframes.len() >= 20, "{} frames", keyframes.len());
    assert!(keyframes[0], "the first frame is a keyframe");
    let later = keyframes[1..].iter().filter(|&&k| k).count();
    assert_eq!(later, 1, "one keyframe answers the one request");
    assert_eq!(sent, 2);
}

#[tokio::test]
async fn a_flood_of_requests_gets_at_most_one_keyframe_per_interval() {
    let seconds = 3.0;
    let (keyframes, sent) = call_with_requests(seconds, 3000).await;
    let made = keyframes.iter().filter(|&&k| k).count() as f64;
    let most = seconds / KEYFRAME_REQUEST_INTERVAL.as_secs_f64() + 1.0;
    eprintln!(
        "{made} keyframes in {} frames for 3000 requests over {seconds} s",
        keyframes.len()
    );
    assert!(made <= most, "{made} keyframes, at most {most}");
    assert!(made >= 3.0, "requests are still honoured: {made}");
    assert_eq!(sent as f64, made);
}
