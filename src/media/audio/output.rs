//! The clock that plays the peer's voice: a speaker through cpal, or, with
//! no speaker, the system clock, pulling 20 ms every 20 ms; and the WAV
//! recording of what was played (`--record-audio`).
//!
//! Why a clock even without a speaker: the playout (jitter buffer, lip
//! sync, the recording) runs on the sound card's time; a headless call or
//! one on a machine with no sound card still needs that time to pass at
//! the right rate, so that the recording sounds as the call would have.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};

use super::devices::{find_device, keep_stream_on_thread, Direction};
use super::{FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE};
use crate::media::MediaError;

/// Fills a buffer of mono samples with what to play now; the duration is
/// how long until they reach the ear (the device's output latency).
pub type PullSamples = Box<dyn FnMut(&mut [f32], Duration) + Send>;

/// Which speaker plays the peer's voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerChoice {
    /// The sound system's default; without one, the clock alone (and a warning).
    Default,
    /// Number N of `vchat devices`; not finding it is an error.
    Index(usize),
    /// No speaker: the clock alone (headless calls, `--no-audio`).
    None,
}

/// A running output: stops when dropped.
pub struct AudioOutput {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    description: String,
    speaker: bool,
}

impl AudioOutput {
    /// Starts pulling. With [`SpeakerChoice::Default`] a speaker that cannot
    /// be opened is not fatal: the output runs on the clock, and the error
    /// comes back to be shown as a warning.
    pub fn start(
        choice: SpeakerChoice,
        pull: PullSamples,
    ) -> Result<(Self, Option<MediaError>), MediaError> {
        let pull = Arc::new(Mutex::new(pull));
        let stop = Arc::new(AtomicBool::new(false));
        let index = match choice {
            SpeakerChoice::None => None,
            SpeakerChoice::Default => Some(None),
            SpeakerChoice::Index(n) => Some(Some(n)),
        };
        let mut warning = None;
        if let Some(index) = index {
            match start_speaker(index, pull.clone(), stop.clone()) {
                Ok((thread, name)) => {
                    return Ok((
                        AudioOutput {
                            stop,
                            thread: Some(thread),
                            description: format!("speaker {name}"),
                            speaker: true,
                        },
                        None,
                    ))
                }
                Err(e) if choice == SpeakerChoice::Default => warning = Some(e),
                Err(e) => return Err(e),
            }
        }
        let thread = start_clock(pull, stop.clone())?;
        Ok((
            AudioOutput {
                stop,
                thread: Some(thread),
                description: "no speaker (the system clock)".into(),
                speaker: false,
            },
            warning,
        ))
    }

    /// Where the sound goes, for logs.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Whether the sound comes out of a speaker (not only the clock).
    pub fn is_speaker(&self) -> bool {
        self.speaker
    }

    /// Stops pulling and waits for the output thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AudioOutput {
    fn drop(&mut self) {
        self.halt();
    }
}

fn pull_locked(pull: &Mutex<PullSamples>, out: &mut [f32], latency: Duration) {
    let mut pull = pull.lock().unwrap_or_else(PoisonError::into_inner);
    (pull)(out, latency);
}

/// 20 ms every 20 ms on the monotonic clock, with no drift of its own.
fn start_clock(
    pull: Arc<Mutex<PullSamples>>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, MediaError> {
    std::thread::Builder::new()
        .name("vchat-playout".into())
        .spawn(move || {
            let start = Instant::now();
            let mut buffer = vec![0.0f32; FRAME_SAMPLES];
            let mut frames: u32 = 0;
            while !stop.load(Ordering::Acquire) {
                frames = frames.saturating_add(1);
                let due = start + FRAME_DURATION * frames;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                pull_locked(&pull, &mut buffer, Duration::ZERO);
            }
        })
        .map_err(|e| MediaError::AudioDevice {
            device: "playout".into(),
            problem: format!("cannot start its thread: {e}"),
        })
}

/// Opens the speaker on a thread that keeps its stream until `stop`.
fn start_speaker(
    index: Option<usize>,
    pull: Arc<Mutex<PullSamples>>,
    stop: Arc<AtomicBool>,
) -> Result<(JoinHandle<()>, String), MediaError> {
    keep_stream_on_thread("speaker", stop, move || build_speaker(index, pull))
}

fn build_speaker(
    index: Option<usize>,
    pull: Arc<Mutex<PullSamples>>,
) -> Result<(cpal::Stream, String), MediaError> {
    let (device, name) = find_device(Direction::Output, index)?;
    let failed = |problem: String| MediaError::AudioDevice {
        device: format!("speaker {name}"),
        problem,
    };
    let default = device
        .default_output_config()
        .map_err(|e| failed(format!("it offers no output format: {e}")))?;
    let channels = usize::from(default.channels().max(1));
    let config = cpal::StreamConfig {
        channels: default.channels().max(1),
        sample_rate: SAMPLE_RATE,
        // 10 ms: a short device queue is latency the ear does not hear.
        buffer_size: cpal::BufferSize::Fixed(SAMPLE_RATE / 100),
    };
    let mut mono = Vec::with_capacity(FRAME_SAMPLES);
    let stream = device
        .build_output_stream::<f32, _, _>(
            config,
            move |data: &mut [f32], info: &cpal::OutputCallbackInfo| {
                let ts = info.timestamp();
                let latency = ts.playback.duration_since(ts.callback);
                mono.resize(data.len() / channels, 0.0);
                pull_locked(&pull, &mut mono, latency);
                for (frame, sample) in data.chunks_mut(channels).zip(&mono) {
                    frame.fill(*sample);
                }
            },
            |e: cpal::Error| tracing::warn!("speaker: {e}"),
            None,
        )
        .map_err(|e| failed(format!("cannot play 48 kHz float audio on it: {e}")))?;
    stream
        .play()
        .map_err(|e| failed(format!("cannot start it: {e}")))?;
    Ok((stream, name))
}

/// Chunks the recorder may fall behind by (10 s of 10 ms chunks) before
/// the playout waits for the disk: a recording must not lose sound.
const RECORDER_QUEUE: usize = 1000;

/// `--record-audio FILE.wav`: what was played, 48 kHz mono 16-bit PCM,
/// which every player and ffprobe read. Written on a thread of its own so
/// a slow disk never holds up the sound card.
pub struct WavRecorder {
    path: PathBuf,
    tx: SyncSender<Vec<f32>>,
    thread: JoinHandle<Result<u64, MediaError>>,
}

impl WavRecorder {
    /// Creates `path` now, so a bad path is reported before the call.
    pub fn create(path: &Path) -> Result<Self, MediaError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer =
            hound::WavWriter::create(path, spec).map_err(|e| wav_write_error(path, e))?;
        let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(RECORDER_QUEUE);
        let owned = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("vchat-record-audio".into())
            .spawn(move || {
                let mut samples = 0u64;
                let fail = |e| wav_write_error(&owned, e);
                for chunk in rx {
                    for s in chunk {
                        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                        writer.write_sample(v).map_err(fail)?;
                        samples += 1;
                    }
                }
                writer.finalize().map_err(fail)?;
                Ok(samples)
            })
            .map_err(|e| MediaError::FileWrite {
                path: path.to_owned(),
                source: e,
            })?;
        Ok(WavRecorder {
            path: path.to_owned(),
            tx,
            thread,
        })
    }

    /// Where the playout hands its samples.
    pub fn sink(&self) -> SyncSender<Vec<f32>> {
        self.tx.clone()
    }

    /// Closes the file once every sink is gone; its path and length in samples.
    pub fn finish(self) -> Result<(PathBuf, u64), MediaError> {
        drop(self.tx);
        let samples = self.thread.join().map_err(|_| MediaError::FileWrite {
            path: self.path.clone(),
            source: std::io::Error::other("the recording thread panicked"),
        })??;
        Ok((self.path, samples))
    }
}

/// A WAV writer's error as the recording's write error.
fn wav_write_error(path: &Path, e: hound::Error) -> MediaError {
    MediaError::FileWrite {
        path: path.to_owned(),
        source: match e {
            hound::Error::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        },
    }
}
