//! Acoustic echo cancellation: on speakers, the peer's voice comes out of
//! ours and back into our microphone, and without this the peer hears
//! itself some 100-300 ms late. WebRTC's echo canceller (AEC3, through
//! `sonora`, a pure-Rust port) learns the path from what we play to what
//! the microphone hears, delay included, and subtracts it from our voice
//! before it is encoded; the peer's voice is its reference.
//!
//! Two threads feed it: the speaker's callback with what it plays (any
//! length; cut here into AEC3's 10 ms blocks) and the audio thread with
//! each 20 ms microphone frame. One lock keeps them apart; a block takes
//! some 0.2 ms, so the speaker's callback never waits long.

use std::sync::{Mutex, PoisonError};

use sonora::config::EchoCanceller as Aec3;
use sonora::{AudioProcessing, Config, StreamConfig};

use super::SAMPLE_RATE;
use crate::media::MediaError;

/// AEC3 works on 10 ms blocks: 480 samples at 48 kHz.
const BLOCK: usize = SAMPLE_RATE as usize / 100;

/// The echo canceller of one call, shared by the speaker and the microphone.
pub struct EchoCanceller {
    inner: Mutex<Inner>,
}

struct Inner {
    processing: AudioProcessing,
    /// What the speaker played that has not made a whole block yet.
    render: Vec<f32>,
    /// AEC3's output for one block (the render side's is not used).
    scratch: Vec<f32>,
}

impl EchoCanceller {
    /// An echo canceller for 48 kHz mono both ways.
    pub fn new() -> Self {
        let config = Config {
            echo_canceller: Some(Aec3::default()),
            ..Default::default()
        };
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let processing = AudioProcessing::builder()
            .config(config)
            .capture_config(stream)
            .render_config(stream)
            .build();
        EchoCanceller {
            inner: Mutex::new(Inner {
                processing,
                render: Vec::with_capacity(2 * BLOCK),
                scratch: vec![0.0; BLOCK],
            }),
        }
    }

    /// What the speaker is playing now (the echo's source).
    pub fn played(&self, samples: &[f32]) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            processing,
            render,
            scratch,
        } = &mut *inner;
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (BLOCK - render.len()).min(rest.len());
            render.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if render.len() == BLOCK {
                // An error here is a wrong block size, which cannot happen:
                // the reference is skipped rather than the call stopped.
                let _ = processing.process_render_f32(&[render], &mut [scratch]);
                render.clear();
            }
        }
    }

    /// Removes the echo from microphone samples, in place, in whole 10 ms
    /// blocks (a 20 ms frame is two).
    pub fn clean(&self, frame: &mut [f32]) -> Result<(), MediaError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            processing,
            scratch,
            ..
        } = &mut *inner;
        for block in frame.chunks_exact_mut(BLOCK) {
            // AEC3 estimates the delay itself; 0 says we know nothing better.
            let _ = processing.set_stream_delay_ms(0);
            processing
                .process_capture_f32(&[block], &mut [scratch])
                .map_err(|e| MediaError::AudioDevice {
                    device: "echo canceller".into(),
                    problem: format!("{e:?}"),
                })?;
            block.copy_from_slice(scratch);
        }
        Ok(())
    }

    /// How much echo it removes now (ERLE, dB), once it has learnt the path.
    pub fn echo_removed_db(&self) -> Option<f64> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.processing.statistics().echo_return_loss_enhancement
    }
}

impl Default for EchoCanceller {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::audio::FRAME_SAMPLES;

    /// Speech-like noise: white noise through a resonant low-pass, with a
    /// syllable-rate envelope.
    fn speech_like(n: usize, seed: u64) -> Vec<f32> {
        let (mut s, mut y1, mut y2) = (seed, 0f32, 0f32);
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let white = ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                let y = 1.6 * y1 - 0.7 * y2 + 0.1 * white;
                (y2, y1) = (y1, y);
                let t = i as f32 / SAMPLE_RATE as f32;
                let envelope = (0.5 + 0.5 * (std::f32::consts::TAU * 4.0 * t).sin()).powi(2);
                0.3 * y * envelope
            })
            .collect()
    }

    fn energy(samples: &[f32]) -> f64 {
        samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
    }

    /// The peer's voice played in odd-sized speaker buffers comes back 60 ms
    /// later at half the level; after 3 s of learning, the echo is at least
    /// 25 dB down. Our own voice (near-end speech at the same time) is kept
    /// within 6 dB.
    #[test]
    fn removes_a_delayed_echo_and_keeps_our_voice() {
        let rate = SAMPLE_RATE as usize;
        let secs = 8;
        let far = speech_like(rate * secs, 0x1234_5678_9abc_def1);
        let ours = speech_like(rate * secs, 0x0fed_cba9_8765_4321);
        let delay = rate * 60 / 1000;
        let canceller = EchoCanceller::new();
        let (mut echo_in, mut echo_out, mut ours_in, mut ours_out) = (0.0, 0.0, 0.0, 0.0);
        let mut played = 0;
        let mut busy = std::time::Duration::ZERO;
        for (k, start) in (0..far.len()).step_by(FRAME_SAMPLES).enumerate() {
            let began = std::time::Instant::now();
            // The speaker asks for 441 samples at a time, not 960.
            while played < start + FRAME_SAMPLES {
                let end = (played + 441).min(far.len());
                canceller.played(&far[played..end]);
                played = end;
            }
            busy += began.elapsed();
            let echo: Vec<f32> = (start..start + FRAME_SAMPLES)
                .map(|i| {
                    if i >= delay {
                        0.5 * far[i - delay]
                    } else {
                        0.0
                    }
                })
                .collect();
            // The second half: we talk too (double talk).
            let talking = k * FRAME_SAMPLES >= rate * 5;
            let mut frame = [0f32; FRAME_SAMPLES];
            for (i, x) in frame.iter_mut().enumerate() {
                *x = echo[i] + if talking { ours[start + i] } else { 0.0 };
            }
            let began = std::time::Instant::now();
            canceller.clean(&mut frame).unwrap();
            busy += began.elapsed();
            let t = start / rate;
            if (3..5).contains(&t) {
                echo_in += energy(&echo);
                echo_out += energy(&frame);
            }
            if t >= 6 {
                ours_in += energy(&ours[start..start + FRAME_SAMPLES]);
                ours_out += energy(&frame);
            }
        }
        let removed = 10.0 * (echo_in / echo_out.max(1e-20)).log10();
        assert!(removed >= 25.0, "only {removed:.1} dB of echo removed");
        let kept = 10.0 * (ours_out / ours_in).log10();
        println!(
            "echo removed {removed:.1} dB; our voice kept at {kept:+.1} dB; \
             {busy:?} of work for {secs} s of audio ({:.1} % of a core)",
            busy.as_secs_f64() / secs as f64 * 100.0
        );
        assert!(kept >= -6.0, "our voice lost {kept:.1} dB");
    }
}
