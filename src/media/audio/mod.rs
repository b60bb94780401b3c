//! Voice: where the sound comes from, how it is coded, and how the peer's
//! voice is played out on time.
//!
//! # Layout
//!
//! - `options`: [`AudioSourceSpec`] (`--audio-source mic|mic:N|tone:HZ|wav:FILE`).
//! - `source`: [`AudioSource`] and its three kinds: a microphone (cpal, on a
//!   thread of its own), a tone and a WAV file (paced by the clock, as a
//!   sound card would be).
//! - `voice_codec`: [`VoiceEncoder`] and [`VoiceDecoder`]: Opus at 48 kHz
//!   mono in 20 ms frames, set up for speech.
//! - `playout`: [`Playout`], the receiver's jitter buffer. I/O-free: packets
//!   go in with their arrival time, 48 kHz samples come out when the sound
//!   card asks. It sizes its depth to the jitter it sees, conceals what is
//!   late (Opus PLC), and stretches gently to absorb clock drift.
//! - `output`: [`AudioOutput`], the clock that pulls from the playout: a
//!   speaker (cpal), or, with no speaker, the system clock; and
//!   [`WavRecorder`] for `--record-audio`.
//! - `devices`: listing microphones and speakers (`vchat devices`).
//! - `echo`: [`EchoCanceller`] (WebRTC's AEC3): what the speaker plays is
//!   taken out of what the microphone hears, so the peer does not hear
//!   itself when we use speakers.
//!
//! # Data flow in a call
//!
//! ```text
//!  sender                                              receiver
//!  AudioSource ─20 ms─► EchoCanceller::clean ─► VoiceEncoder ─opus─► link ─► Playout::push
//!  (mic/tone/wav)                      (audio first)   Playout::pull ◄─ AudioOutput (speaker
//!                                                       (decode, PLC,    or clock) ─► WavRecorder
//!                                                        stretch)
//!  (what a speaker plays goes to EchoCanceller::played: the echo's reference)
//! ```

mod devices;
mod echo;
mod options;
mod output;
mod playout;
mod source;
mod voice_codec;

use std::time::Duration;

pub use devices::{print_audio_devices, AudioDeviceList};
pub use echo::EchoCanceller;
pub use options::AudioSourceSpec;
pub use output::{AudioOutput, PullSamples, SpeakerChoice, WavRecorder};
pub use playout::{Playout, PlayoutStats, Pulled, MAX_TARGET, MIN_TARGET};
pub use source::{open_audio_source, AudioSource, CapturedAudio};
pub use voice_codec::{VoiceDecoder, VoiceEncoder, VOICE_BITRATE};

/// The one sample rate of vchat's audio: Opus's native rate, and what
/// every sound server offers.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`SAMPLE_RATE`]: what Opus codes best for
/// speech, and one `audio` message.
pub const FRAME_SAMPLES: usize = 960;

/// One frame's duration.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Microseconds per sample, for capture times.
pub(crate) const MICROS_PER_SAMPLE: f64 = 1e6 / SAMPLE_RATE as f64;

/// The level of `samples` in dBFS (root mean square; -100 for silence),
/// for the level meter.
pub fn level_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -100.0;
    }
    let power: f32 = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    if power <= 1e-10 {
        -100.0
    } else {
        (10.0 * power.log10()).max(-100.0)
    }
}
