//! Where our voice comes from: a microphone, a tone or a WAV file, each
//! delivering 20 ms frames with their capture times.
//!
//! Why the tone and the file are paced by the clock: a sound card delivers
//! a frame every 20 ms, and the rest of the call (the send queue, the
//! peer's jitter buffer) is built for that rhythm. Why the microphone has a
//! thread of its own: a cpal stream must stay on the thread that made it,
//! and its callback must never block, so it hands samples over a bounded
//! channel and the call's audio thread cuts them into frames.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cpal::traits::{DeviceTrait, StreamTrait};

use super::devices::{find_device, keep_stream_on_thread, Direction};
use super::{AudioSourceSpec, FRAME_DURATION, FRAME_SAMPLES, MICROS_PER_SAMPLE, SAMPLE_RATE};
use crate::media::{unix_micros, MediaError};

/// One 20 ms frame of our voice.
#[derive(Debug, Clone)]
pub struct CapturedAudio {
    /// `FRAME_SAMPLES` samples, mono, -1..1.
    pub samples: Vec<f32>,
    /// When the first sample was captured, microseconds since the Unix
    /// epoch (the clock of our video's capture times).
    pub capture_time_us: u64,
}

/// A source of 20 ms frames.
pub trait AudioSource: Send {
    /// The next frame, waiting at most `timeout` for it (`Ok(None)`: none
    /// yet, ask again).
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedAudio>, MediaError>;

    /// What the source is, for logs.
    fn describe(&self) -> String;
}

/// Opens the source `spec` names. A missing microphone is reported here,
/// before any call, with what to do about it.
pub fn open_audio_source(spec: &AudioSourceSpec) -> Result<Box<dyn AudioSource>, MediaError> {
    Ok(match spec {
        AudioSourceSpec::Tone { hz } => Box::new(ToneSource::new(*hz)),
        AudioSourceSpec::Beep => Box::new(BeepSource::new()),
        AudioSourceSpec::Wav { path } => Box::new(WavSource::open(path)?),
        AudioSourceSpec::Mic { index } => Box::new(MicSource::open(*index)?),
    })
}

/// Keeps frames on the clock: frame k is due at `start + k * 20 ms`.
struct FrameClock {
    start: Instant,
    start_unix_us: u64,
    frames: u64,
}

impl FrameClock {
    fn new() -> Self {
        FrameClock {
            start: Instant::now(),
            start_unix_us: unix_micros(SystemTime::now()),
            frames: 0,
        }
    }

    /// Waits (up to `timeout`) for the next frame's end; its capture time
    /// (its first sample) if it is due.
    fn wait_next(&mut self, timeout: Duration) -> Option<u64> {
        let offset = FRAME_DURATION * u32::try_from(self.frames + 1).unwrap_or(u32::MAX);
        let due = self.start + offset;
        let now = Instant::now();
        if due > now {
            let wait = due - now;
            if wait > timeout {
                std::thread::sleep(timeout);
                return None;
            }
            std::thread::sleep(wait);
        }
        let capture = self.start_unix_us + self.frames * FRAME_DURATION.as_micros() as u64;
        self.frames += 1;
        Some(capture)
    }
}

/// A sine tone at -10 dBFS, for tests and sound checks.
pub struct ToneSource {
    hz: f32,
    oscillator: Oscillator,
    clock: FrameClock,
}

impl ToneSource {
    /// A tone of `hz` hertz, starting now.
    pub fn new(hz: f32) -> Self {
        ToneSource {
            hz,
            oscillator: Oscillator::new(f64::from(hz)),
            clock: FrameClock::new(),
        }
    }
}

/// A sine by rotation: each sample turns a unit phasor by one step (a
/// complex multiply) instead of calling `sin`, which with the phase's
/// wrap-around cost a quarter of a percent of a core per call, more than
/// the rest of the tone's path (BENCHMARKS.md, "CPU for voice").
struct Oscillator {
    /// The phasor (cos, sin) of the current phase.
    at: (f64, f64),
    /// The phasor of one sample's step.
    step: (f64, f64),
}

impl Oscillator {
    fn new(hz: f64) -> Self {
        let step = std::f64::consts::TAU * hz / f64::from(SAMPLE_RATE);
        Oscillator {
            at: (1.0, 0.0),
            step: (step.cos(), step.sin()),
        }
    }

    /// One frame of the sine at `amplitude`; the phasor is brought back to
    /// length 1 after each frame, so rounding never changes the level.
    fn frame(&mut self, amplitude: f64) -> Vec<f32> {
        let (c, s) = self.step;
        let samples = (0..FRAME_SAMPLES)
            .map(|_| {
                let (re, im) = self.at;
                self.at = (re * c - im * s, re * s + im * c);
                (amplitude * im) as f32
            })
            .collect();
        let (re, im) = self.at;
        let length = re.hypot(im);
        self.at = (re / length, im / length);
        samples
    }
}

impl AudioSource for ToneSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedAudio>, MediaError> {
        let Some(capture_time_us) = self.clock.wait_next(timeout) else {
            return Ok(None);
        };
        Ok(Some(CapturedAudio {
            samples: self.oscillator.frame(0.45),
            capture_time_us,
        }))
    }

    fn describe(&self) -> String {
        format!("a {} Hz tone", self.hz)
    }
}

/// How long each beep of [`BeepSource`] lasts, and its pitch.
pub const BEEP_LENGTH_US: u64 = 100_000;
pub const BEEP_HZ: f64 = 1000.0;

/// A 1 kHz beep at the start of every second of the system clock, by each
/// sample's own capture time (`--audio-source beep`; `--source flash`
/// flashes at the same instants).
pub struct BeepSource {
    clock: FrameClock,
}

impl BeepSource {
    pub fn new() -> Self {
        BeepSource {
            clock: FrameClock::new(),
        }
    }
}

impl Default for BeepSource {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioSource for BeepSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedAudio>, MediaError> {
        let Some(capture_time_us) = self.clock.wait_next(timeout) else {
            return Ok(None);
        };
        let samples = (0..FRAME_SAMPLES)
            .map(|i| {
                let at = capture_time_us as f64 + i as f64 * MICROS_PER_SAMPLE;
                let into_second = at.rem_euclid(1e6);
                if into_second < BEEP_LENGTH_US as f64 {
                    let t = into_second / 1e6;
                    (0.45 * (std::f64::consts::TAU * BEEP_HZ * t).sin()) as f32
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Some(CapturedAudio {
            samples,
            capture_time_us,
        }))
    }

    fn describe(&self) -> String {
        "a 1 kHz beep every second".into()
    }
}

/// A 48 kHz WAV file, played in a loop, mixed down to mono.
pub struct WavSource {
    path: PathBuf,
    samples: Vec<f32>,
    at: usize,
    clock: FrameClock,
}

/// Longest WAV file read (10 minutes of 48 kHz mono floats, 115 MB): a
/// voice for tests and demos, not a music library.
const MAX_WAV_SAMPLES: u64 = 10 * 60 * SAMPLE_RATE as u64;

impl WavSource {
    /// Reads `path` whole. Its rate must be 48 kHz: resampling files is a
    /// job for sox (`sox in.wav -r 48000 out.wav`), said in the error.
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        let bad = |problem: String| MediaError::BadWav {
            path: path.to_owned(),
            problem,
        };
        let mut reader = hound::WavReader::open(path).map_err(|e| match e {
            hound::Error::IoError(source) => MediaError::FileRead {
                path: path.to_owned(),
                source,
            },
            other => bad(other.to_string()),
        })?;
        let spec = reader.spec();
        if spec.sample_rate != SAMPLE_RATE {
            return Err(bad(format!(
                "its sample rate is {} Hz; vchat needs {SAMPLE_RATE} Hz (convert it: sox IN.wav -r {SAMPLE_RATE} OUT.wav)",
                spec.sample_rate
            )));
        }
        let channels = usize::from(spec.channels.max(1));
        let frames = u64::from(reader.duration());
        if frames > MAX_WAV_SAMPLES {
            return Err(bad(format!(
                "it is {} s long; vchat plays files of at most {} s",
                frames / u64::from(SAMPLE_RATE),
                MAX_WAV_SAMPLES / u64::from(SAMPLE_RATE)
            )));
        }
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(8, 32) - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(e.to_string()))?
            }
        };
        let samples: Vec<f32> = interleaved
            .chunks(channels)
            .map(|c| c.iter().sum::<f32>() / c.len() as f32)
            .collect();
        if samples.len() < FRAME_SAMPLES {
            return Err(bad("it holds less than 20 ms of sound".into()));
        }
        Ok(WavSource {
            path: path.to_owned(),
            samples,
            at: 0,
            clock: FrameClock::new(),
        })
    }
}

impl AudioSource for WavSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedAudio>, MediaError> {
        let Some(capture_time_us) = self.clock.wait_next(timeout) else {
            return Ok(None);
        };
        let mut samples = Vec::with_capacity(FRAME_SAMPLES);
        while samples.len() < FRAME_SAMPLES {
            if self.at >= self.samples.len() {
                self.at = 0;
            }
            let take = (FRAME_SAMPLES - samples.len()).min(self.samples.len() - self.at);
            samples.extend_from_slice(self.samples.get(self.at..self.at + take).unwrap_or(&[]));
            self.at += take;
        }
        Ok(Some(CapturedAudio {
            samples,
            capture_time_us,
        }))
    }

    fn describe(&self) -> String {
        format!("{} (looped)", self.path.display())
    }
}

/// Chunks of captured samples the callback may queue before the audio
/// thread takes them (about 1 s at 10 ms callbacks): beyond that the call
/// is stuck, and the newest sound is dropped rather than memory grown.
const MIC_QUEUE: usize = 100;

/// A microphone, through cpal.
pub struct MicSource {
    name: String,
    chunks: Receiver<(Vec<f32>, Instant)>,
    pending: Vec<f32>,
    /// When `pending[0]` was captured.
    pending_at: Option<Instant>,
    stop: Arc<AtomicBool>,
    anchor: (Instant, u64),
}

impl MicSource {
    /// Opens microphone `index` (of `vchat devices`), or the default one.
    pub fn open(index: Option<usize>) -> Result<Self, MediaError> {
        let (chunk_tx, chunks) = mpsc::sync_channel(MIC_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let (_thread, name) = keep_stream_on_thread("microphone", stop.clone(), move || {
            start_capture(index, chunk_tx)
        })?;
        Ok(MicSource {
            name,
            chunks,
            pending: Vec::with_capacity(FRAME_SAMPLES * 2),
            pending_at: None,
            stop,
            anchor: (Instant::now(), unix_micros(SystemTime::now())),
        })
    }

    fn unix_at(&self, at: Instant) -> u64 {
        let (instant, unix) = self.anchor;
        match at.checked_duration_since(instant) {
            Some(after) => unix + after.as_micros() as u64,
            None => unix.saturating_sub(instant.duration_since(at).as_micros() as u64),
        }
    }
}

impl Drop for MicSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl AudioSource for MicSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<CapturedAudio>, MediaError> {
        let deadline = Instant::now() + timeout;
        while self.pending.len() < FRAME_SAMPLES {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok((chunk, captured)) => {
                    if self.pending.is_empty() {
                        self.pending_at = Some(captured);
                    }
                    self.pending.extend_from_slice(&chunk);
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(MediaError::AudioDevice {
                        device: self.name.clone(),
                        problem: "the microphone stopped delivering sound".into(),
                    })
                }
            }
        }
        let samples: Vec<f32> = self.pending.drain(..FRAME_SAMPLES).collect();
        let at = self.pending_at.unwrap_or_else(Instant::now);
        let capture_time_us = self.unix_at(at);
        self.pending_at =
            Some(at + Duration::from_micros((FRAME_SAMPLES as f64 * MICROS_PER_SAMPLE) as u64));
        Ok(Some(CapturedAudio {
            samples,
            capture_time_us,
        }))
    }

    fn describe(&self) -> String {
        format!("microphone {}", self.name)
    }
}

/// Builds and starts the input stream (on the calling thread, which must
/// keep it): mono 48 kHz floats go to `chunks` with their capture instants.
fn start_capture(
    index: Option<usize>,
    chunks: SyncSender<(Vec<f32>, Instant)>,
) -> Result<(cpal::Stream, String), MediaError> {
    let (device, name) = find_device(Direction::Input, index)?;
    let failed = |problem: String| MediaError::AudioDevice {
        device: format!("microphone {name}"),
        problem,
    };
    let default = device
        .default_input_config()
        .map_err(|e| failed(format!("it offers no input format: {e}")))?;
    let channels = usize::from(default.channels().max(1));
    let config = cpal::StreamConfig {
        channels: default.channels().max(1),
        sample_rate: SAMPLE_RATE,
        buffer_size: cpal::BufferSize::Default,
    };
    let on_error = |e: cpal::Error| tracing::warn!("microphone: {e}");
    let stream = device
        .build_input_stream::<f32, _, _>(
            config,
            move |data: &[f32], info: &cpal::InputCallbackInfo| {
                let ts = info.timestamp();
                let age = ts.callback.duration_since(ts.capture);
                let captured = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                let mono: Vec<f32> = data
                    .chunks(channels)
                    .map(|c| c.iter().sum::<f32>() / c.len() as f32)
                    .collect();
                // Full: the call is stuck; dropping is all a callback may do.
                if let Err(TrySendError::Full(_)) = chunks.try_send((mono, captured)) {}
            },
            on_error,
            None,
        )
        .map_err(|e| failed(format!("cannot capture 48 kHz float audio from it: {e}")))?;
    stream
        .play()
        .map_err(|e| failed(format!("cannot start it: {e}")))?;
    Ok((stream, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tone_is_paced_and_stamped_20_ms_apart() {
        let mut tone = ToneSource::new(1000.0);
        let start = Instant::now();
        let mut times = Vec::new();
        while times.len() < 5 {
            if let Some(frame) = tone.next_frame(Duration::from_millis(100)).unwrap() {
                assert_eq!(frame.samples.len(), FRAME_SAMPLES);
                times.push(frame.capture_time_us);
            }
        }
        assert!(start.elapsed() >= Duration::from_millis(100));
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], 20_000);
        }
    }

    #[test]
    fn the_oscillator_stays_on_the_sine_for_half_an_hour() {
        let hz = 440.0;
        let mut oscillator = Oscillator::new(hz);
        let frames = 30 * 60 * 50;
        let mut worst: f64 = 0.0;
        for frame in 0..frames {
            let samples = oscillator.frame(0.45);
            // Checked in the first and the last second, and now and then.
            if frame < 50 || frame >= frames - 50 || frame % 997 == 0 {
                for (i, &sample) in samples.iter().enumerate() {
                    let n = (frame * FRAME_SAMPLES + i) as f64;
                    let phase = std::f64::consts::TAU * hz * n / f64::from(SAMPLE_RATE);
                    worst = worst.max((f64::from(sample) - 0.45 * phase.sin()).abs());
                }
            }
        }
        // Well under one step of 16-bit audio (3e-5).
        assert!(worst < 1e-5, "the tone wandered off its sine by {worst}");
    }

    #[test]
    fn wav_files_at_other_rates_or_missing_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("44k.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..4410 {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let e = WavSource::open(&path).err().unwrap().to_string();
        assert!(e.contains("44100 Hz") && e.contains("sox"), "{e}");
        let e = WavSource::open(&dir.path().join("none.wav"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::write(dir.path().join("text.wav"), "not a wav").unwrap();
        let e = WavSource::open(&dir.path().join("text.wav"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a usable WAV"), "{e}");
    }

    #[test]
    fn a_stereo_wav_is_mixed_to_mono_and_looped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..1000 {
            w.write_sample(16384i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let mut source = WavSource::open(&path).unwrap();
        let mut got = 0;
        while got < 3 {
            if let Some(f) = source.next_frame(Duration::from_millis(100)).unwrap() {
                assert!(f.samples.iter().all(|s| (s - 0.25).abs() < 1e-3));
                got += 1;
            }
        }
    }
}
