//! `vchat bench`: how fast vchat is on this machine, and how close it comes
//! to the limit.
//!
//! Two peers run in this process over loopback with everything a real call
//! has: throwaway identities, the pinned mutual-TLS 1.3 handshake, the
//! hello/accept exchange, the real pipeline (media thread, slots, writer and
//! reader tasks, decoder thread) and codecs. Only capture is replaced, by
//! pre-generated frames ([`frames`]), so the camera is not what is measured.
//! Video flows one way: the sender sends, the receiver (camera off) decodes.
//!
//! For each size and codec:
//! - a throughput run: the sender's source is paced by its link, as a
//!   camera is by its clock: it makes the next frame once the link has
//!   taken the one before ([`frames::LinkTook`], fed by the call's
//!   [`crate::call::VideoTakenHook`]), so frames are made only as fast as
//!   they can be sent and none in vain; we count frames the receiver
//!   decoded. The call is the one every call runs: newest-frame slots, no
//!   bench mode in the pipeline; only the source differs.
//! - a latency run: frames paced at 30 fps through the call's usual
//!   newest-frame-only path; capture-to-decoded latency on the shared clock.
//!   It lasts 10 s by default, so its p99 rests on 300 frames rather than
//!   being the slowest of 90.
//! - for raw codecs, the bare reference ([`bare`]): the same bytes through a
//!   plain TLS stream, in [`COMPARISON_ROUNDS`] short rounds alternating
//!   with vchat calls, and the median ratio vchat / bare
//!   ([`report::Comparison`]).
//!
//! CPU time and memory ([`usage`]) are the whole process: both peers.

pub mod bare;
pub mod frames;
pub mod report;
pub mod usage;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::call::handshake::local_hello;
use crate::call::pipeline::{CallSummary, PipelineConfig};
use crate::call::setup::{handshake_and_run, Plan};
use crate::call::{CallError, VideoTakenHook};
use crate::identity::{Identity, PinnedPeer};
use crate::media::{Fps, MediaError, Quality, Size};
use crate::net::{classify, dial, Listener, ListenerOptions, PinSet, HANDSHAKE_TIMEOUT};
use crate::protocol::{Connection, PixelFormat, Role};
use crate::ui::{DisplayState, UiCommand, UiHandle};
use bare::BareError;
use frames::{BenchSource, IdleSource, LinkTook, Pace};
use report::{CaseResult, Comparison, Report, Round};
use usage::RssTrend;

/// Seconds per run when neither `--duration` nor `--frames` is given: long
/// enough for steady state and a p99 from ~100 paced frames, short enough
/// that the default 6 cases (x2 runs, + 3 bare) finish in about a minute.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(3);

/// The frame rate of the latency runs: a typical camera's.
pub const LATENCY_FPS: u32 = 30;

/// Seconds per latency run by default: 300 paced frames, so the p99 is the
/// third slowest frame, not the slowest.
pub const DEFAULT_LATENCY_DURATION: Duration = Duration::from_secs(10);

/// Rounds of vchat against the bare stream per raw case; odd, for a median.
pub const COMPARISON_ROUNDS: usize = 5;

/// About how long each side of a comparison round sends.
pub const ROUND_SECONDS: f64 = 0.5;

/// A comparison round sends at least this many frames.
const MIN_ROUND_FRAMES: u64 = 5;

/// The sizes measured by default: VGA, 720p and 1080p, a camera's usual three.
const DEFAULT_SIZES: &str = "640x480,1280x720,1920x1080";

/// The codecs measured by default: raw shows the path's own cost, JPEG and
/// H.264 the codecs'.
const DEFAULT_CODECS: &str = "raw,jpeg,h264";

/// `vchat bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Frame sizes to measure, comma-separated WxH.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_SIZES, value_name = "WxH,..")]
    pub sizes: Vec<Size>,
    /// Codecs to measure, comma-separated: raw (RGB24), i420, jpeg, h264.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_CODECS, value_name = "CODEC,..")]
    pub codecs: Vec<PixelFormat>,
    /// Stop each run after N frames sent (throughput) or captured at 30 fps (latency).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Seconds per run (default 3, and 10 for latency runs, unless --frames is given; with both, whichever comes first).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// JPEG quality, 1-100.
    #[arg(long, default_value = "80", value_name = "Q")]
    pub quality: Quality,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Bare(#[from] BareError),
    #[error("invalid option: {0}")]
    Options(String),
    #[error("the receiving peer's task failed: {0}")]
    Task(String),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

impl From<MediaError> for BenchError {
    fn from(e: MediaError) -> Self {
        BenchError::Call(CallError::Media(e))
    }
}

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub frames: Option<u64>,
    pub duration: Option<Duration>,
}

impl BenchArgs {
    /// Checks the options and turns them into a run limit.
    pub fn limit(&self) -> Result<Limit, BenchError> {
        if self.sizes.is_empty() || self.codecs.is_empty() {
            return Err(BenchError::Options(
                "--sizes and --codecs need at least one value".into(),
            ));
        }
        if self.frames == Some(0) {
            return Err(BenchError::Options("--frames must be at least 1".into()));
        }
        let duration = match self.duration {
            Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e6 => {
                Some(Duration::from_secs_f64(secs))
            }
            Some(secs) => {
                return Err(BenchError::Options(format!(
                    "--duration {secs} is not a positive number of seconds"
                )))
            }
            None if self.frames.is_some() => None,
            None => Some(DEFAULT_DURATION),
        };
        Ok(Limit {
            frames: self.frames,
            duration,
        })
    }

    /// The latency runs' limit: `limit` (from [`BenchArgs::limit`]), but
    /// [`DEFAULT_LATENCY_DURATION`] when neither option is given.
    pub fn latency_limit(&self, limit: Limit) -> Limit {
        match (self.frames, self.duration) {
            (None, None) => Limit {
                duration: Some(DEFAULT_LATENCY_DURATION),
                ..limit
            },
            _ => limit,
        }
    }
}

/// The two throwaway identities, each pinning the other.
pub struct Peers {
    pub sender: Identity,
    pub receiver: Identity,
}

impl Peers {
    pub fn generate() -> Result<Peers, CallError> {
        Ok(Peers {
            sender: Identity::generate("bench sender")?,
            receiver: Identity::generate("bench receiver")?,
        })
    }

    pub fn sender_pin(&self) -> PinnedPeer {
        PinnedPeer {
            name: "sender".into(),
            certificate: self.sender.certificate().clone(),
        }
    }

    pub fn receiver_pin(&self) -> PinnedPeer {
        PinnedPeer {
            name: "receiver".into(),
            certificate: self.receiver.certificate().clone(),
        }
    }
}

/// One call between the two peers and what it cost.
#[derive(Debug, Clone)]
pub struct CallRun {
    pub sender: CallSummary,
    pub receiver: CallSummary,
    /// Process CPU time (user + system) during the call.
    pub cpu: Option<Duration>,
    /// Peak resident set during the call (VmHWM, reset before it).
    pub peak_kib: Option<u64>,
    pub rss: Option<RssTrend>,
}

/// `vchat bench`: runs every case and writes the table (or JSON) to `out`.
pub fn main(args: &BenchArgs, out: &mut impl Write) -> Result<(), BenchError> {
    let limit = args.limit()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vchat-net")
        .build()
        .map_err(|e| CallError::Internal(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(run_all(args, limit))?;
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        write!(out, "{}", report.table())?;
    }
    Ok(())
}

/// Runs every size x codec case in order.
pub async fn run_all(args: &BenchArgs, limit: Limit) -> Result<Report, BenchError> {
    let latency_limit = args.latency_limit(limit);
    let started = Instant::now();
    let rss_at_start = usage::status_kib("VmRSS");
    let peers = Arc::new(Peers::generate()?);
    let mut cases = Vec::new();
    for &size in &args.sizes {
        for &codec in &args.codecs {
            let name = report::codec_name(codec);
            eprintln!("vchat bench: {size} {name}: throughput");
            let throughput =
                run_call(&peers, size, codec, args.quality, limit, Run::Throughput).await?;
            eprintln!("vchat bench: {size} {name}: latency at {LATENCY_FPS} fps");
            let latency = run_call(
                &peers,
                size,
                codec,
                args.quality,
                latency_limit,
                Run::Latency,
            )
            .await?;
            let comparison = match codec.raw_len(size.width(), size.height()) {
                Some(_) => {
                    eprintln!("vchat bench: {size} {name}: against the bare TLS stream");
                    let fps = report::rates(&throughput).fps;
                    let frames = ((fps * ROUND_SECONDS) as u64).max(MIN_ROUND_FRAMES);
                    let frames = limit.frames.map_or(frames, |n| n.min(frames));
                    let payloads = frames::wire_payloads(size, codec, args.quality)?;
                    Some(compare(&peers, size, codec, args.quality, &payloads, frames).await?)
                }
                None => None,
            };
            cases.push(CaseResult {
                size,
                codec,
                throughput,
                latency,
                comparison,
            });
        }
    }
    Ok(Report {
        cpu_model: usage::cpu_model(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        limit,
        latency_limit,
        quality: args.quality,
        cases,
        rss_at_start_kib: rss_at_start,
        rss_at_end_kib: usage::status_kib("VmRSS"),
        elapsed: started.elapsed(),
    })
}

/// [`COMPARISON_ROUNDS`] rounds of an unpaced vchat call and the bare
/// stream, `frames` frames each, alternating which goes first.
async fn compare(
    peers: &Arc<Peers>,
    size: Size,
    codec: PixelFormat,
    quality: Quality,
    payloads: &[Bytes],
    frames: u64,
) -> Result<Comparison, BenchError> {
    let limit = Limit {
        frames: Some(frames),
        duration: None,
    };
    let mut rounds = Vec::with_capacity(COMPARISON_ROUNDS);
    for round in 0..COMPARISON_ROUNDS {
        let (vchat, bare) = if round % 2 == 0 {
            let vchat = run_call(peers, size, codec, quality, limit, Run::Throughput).await?;
            (vchat, bare::run(peers, payloads, frames).await?)
        } else {
            let bare = bare::run(peers, payloads, frames).await?;
            let vchat = run_call(peers, size, codec, quality, limit, Run::Throughput).await?;
            (vchat, bare)
        };
        rounds.push(Round {
            vchat: report::rates(&vchat),
            bare,
        });
    }
    Ok(Comparison { rounds })
}

/// What a bench call measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Frames as fast as the receiver decodes them.
    Throughput,
    /// Frames paced at [`LATENCY_FPS`], as from a camera.
    Latency,
}

/// One call: the receiver listens with its camera off, the sender dials and
/// sends `codec` at `size` until `limit`, paced as `run` says.
pub async fn run_call(
    peers: &Arc<Peers>,
    size: Size,
    codec: PixelFormat,
    quality: Quality,
    limit: Limit,
    run: Run,
) -> Result<CallRun, BenchError> {
    let fps = Fps::new(LATENCY_FPS)?;
    let (pace, on_video_taken) = match run {
        Run::Throughput => {
            let link = Arc::new(LinkTook::default());
            let took = link.clone();
            let hook: VideoTakenHook = Arc::new(move |sequence| took.record(sequence));
            (Pace::AsTheLinkTakes(link), Some(hook))
        }
        Run::Latency => (Pace::Every(Duration::from_secs(1) / LATENCY_FPS), None),
    };
    let source = BenchSource::new(size, pace)?;
    let idle = IdleSource::new()?;
    let config = |peer_name: &str, limit: Option<Limit>| PipelineConfig {
        quality,
        fps,
        max_frames: limit.and_then(|l| l.frames),
        duration: limit.and_then(|l| l.duration),
        ..PipelineConfig::for_peer(peer_name)
    };

    let mut listener = Listener::bind(
        "127.0.0.1:0",
        &peers.receiver,
        PinSet::new(vec![peers.sender_pin()]),
        ListenerOptions::default(),
    )
    .await
    .map_err(CallError::from)?;
    let addr = listener.local_addr().to_string();

    let peak_reset = usage::reset_peak();
    let sampler = usage::RssSampler::start();
    let cpu_before = usage::cpu_time();

    // The receiver ends when the sender says bye, so it has no limit of its own.
    let receiver_plan = Plan {
        hello: local_hello("bench receiver"),
        wanted: PixelFormat::Jpeg,
        config: config("sender", None),
        on_video_taken: None,
    };
    let receiver = tokio::spawn(async move {
        let secure = listener.accept().await.ok_or(CallError::ListenerClosed)?;
        let remote = secure.remote;
        let conn = Connection::new(secure.stream, Role::Listener);
        let map_io = move |e| CallError::Net(classify(remote, e));
        let (camera, commands) = mpsc::unbounded_channel();
        // Never sent: the receiver only receives.
        let _ = camera.send(UiCommand::SetCamera(false));
        let ui = UiHandle::headless(DisplayState::new("sender", ""));
        let summary =
            handshake_and_run(conn, receiver_plan, map_io, Box::new(idle), ui, commands).await;
        drop((camera, listener));
        summary
    });

    let sender = async {
        let receiver_pin = peers.receiver_pin();
        let secure = dial(&addr, &peers.sender, &receiver_pin, HANDSHAKE_TIMEOUT)
            .await
            .map_err(CallError::from)?;
        let remote = secure.remote;
        let conn = Connection::new(secure.stream, Role::Caller);
        let map_io = move |e| CallError::Net(classify(remote, e));
        let (_keep, no_commands) = mpsc::unbounded_channel();
        let ui = UiHandle::headless(DisplayState::new("receiver", ""));
        let plan = Plan {
            hello: local_hello("bench sender"),
            wanted: codec,
            config: config("receiver", Some(limit)),
            on_video_taken,
        };
        handshake_and_run(conn, plan, map_io, Box::new(source), ui, no_commands).await
    };
    let sender = sender.await;
    let receiver = receiver.await;

    let cpu = usage::cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let peak_kib = if peak_reset {
        usage::status_kib("VmHWM")
    } else {
        None
    };
    let rss = sampler.finish();
    let receiver = receiver.map_err(|e| BenchError::Task(e.to_string()))??;
    Ok(CallRun {
        sender: sender?,
        receiver,
        cpu,
        peak_kib,
        rss,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn defaults_are_every_size_and_codec_for_three_seconds() {
        let args = parse(&[]).unwrap();
        let sizes: Vec<String> = args.sizes.iter().map(|s| s.to_string()).collect();
        assert_eq!(sizes, ["640x480", "1280x720", "1920x1080"]);
        assert_eq!(
            args.codecs,
            [PixelFormat::Rgb24, PixelFormat::Jpeg, PixelFormat::H264]
        );
        assert!(!args.json);
        let limit = args.limit().unwrap();
        assert_eq!(limit.duration, Some(DEFAULT_DURATION));
        assert_eq!(limit.frames, None);
    }

    #[test]
    fn frames_alone_drop_the_default_duration() {
        let args = parse(&["--sizes", "160x120", "--codecs", "i420", "--frames", "30"]).unwrap();
        assert_eq!(args.codecs, [PixelFormat::I420]);
        let limit = args.limit().unwrap();
        assert_eq!(limit.frames, Some(30));
        assert_eq!(limit.duration, None);
        let both = parse(&["--frames", "30", "--duration", "1.5"]).unwrap();
        assert_eq!(
            both.limit().unwrap().duration,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&["--sizes", "640"]).is_err());
        assert!(parse(&["--codecs", "vp8"]).is_err());
        assert!(parse(&["--frames", "0"]).unwrap().limit().is_err());
        assert!(parse(&["--duration", "0"]).unwrap().limit().is_err());
    }
}
