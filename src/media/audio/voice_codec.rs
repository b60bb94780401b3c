//! Opus for speech: 48 kHz mono, 20 ms frames, variable bitrate around
//! 24 kbit/s.
//!
//! Why these settings: `Voip` mode turns on Opus's speech tools (SILK at
//! this rate, its noise suppression-friendly bandwidth choice); 24 kbit/s
//! is wideband speech that people rate close to transparent, small next to
//! any video; 20 ms frames are the usual trade between header overhead and
//! delay. In-band FEC is off: the link is TCP, which loses nothing, it only
//! delays; a late packet is concealed by PLC instead (see `playout.rs`).

use super::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::media::MediaError;
use crate::protocol::limits::MAX_AUDIO_PAYLOAD_LEN;

/// The bitrate the encoder aims at, bits per second (VBR: speech pauses
/// cost less).
pub const VOICE_BITRATE: i32 = 24_000;

/// Opus's encoder effort, 0-10 (its default is 10). 5 halves the
/// encoder's CPU; for wideband speech at 24 kbit/s the difference is hard
/// to hear (BENCHMARKS.md has the figures).
const VOICE_COMPLEXITY: i32 = 5;

/// Longest Opus packet duration (120 ms), in samples: a decoder's buffer
/// must hold the longest packet a peer may send.
/// The most one of our packets may hold (Opus fits its packet to the
/// room it is given): well under the protocol's limit, so that a packet and
/// its header always fit one voice datagram (protocol/datagram.rs). Speech
/// at our bitrate takes 60-120 bytes.
pub const MAX_VOICE_PACKET_LEN: usize = 1000;
const _: () = assert!(MAX_VOICE_PACKET_LEN <= MAX_AUDIO_PAYLOAD_LEN);

const MAX_PACKET_SAMPLES: usize = SAMPLE_RATE as usize * 120 / 1000;

fn opus_error(step: &'static str) -> impl Fn(opus::Error) -> MediaError {
    move |e| MediaError::Opus {
        step,
        reason: e.to_string(),
    }
}

/// Encodes 20 ms frames of our voice.
pub struct VoiceEncoder {
    encoder: opus::Encoder,
    packet: Vec<u8>,
}

impl VoiceEncoder {
    /// An encoder with vchat's speech settings.
    pub fn new() -> Result<Self, MediaError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(opus_error("encoder setup"))?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(VOICE_BITRATE))
            .map_err(opus_error("encoder setup"))?;
        encoder.set_vbr(true).map_err(opus_error("encoder setup"))?;
        encoder
            .set_signal(opus::Signal::Voice)
            .map_err(opus_error("encoder setup"))?;
        encoder
            .set_complexity(VOICE_COMPLEXITY)
            .map_err(opus_error("encoder setup"))?;
        Ok(VoiceEncoder {
            encoder,
            packet: vec![0; MAX_VOICE_PACKET_LEN],
        })
    }

    /// One Opus packet for one frame of `FRAME_SAMPLES` samples in -1..1.
    pub fn encode(&mut self, frame: &[f32]) -> Result<Vec<u8>, MediaError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(MediaError::Opus {
                step: "encode",
                reason: format!("a frame of {} samples, not {FRAME_SAMPLES}", frame.len()),
            });
        }
        let len = self
            .encoder
            .encode_float(frame, &mut self.packet)
            .map_err(opus_error("encode"))?;
        Ok(self.packet.get(..len).unwrap_or_default().to_vec())
    }
}

/// Decodes the peer's packets, and conceals the ones that are missing.
pub struct VoiceDecoder {
    decoder: opus::Decoder,
    buffer: Vec<f32>,
}

impl VoiceDecoder {
    /// A decoder for 48 kHz mono.
    pub fn new() -> Result<Self, MediaError> {
        Ok(VoiceDecoder {
            decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)
                .map_err(opus_error("decoder setup"))?,
            buffer: vec![0.0; MAX_PACKET_SAMPLES],
        })
    }

    /// The samples of one packet from the peer. A packet Opus refuses is
    /// the peer's error, returned for the caller to count (one bad packet
    /// is concealed like a lost one, not a reason to end a call).
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], MediaError> {
        let n = self
            .decoder
            .decode_float(packet, &mut self.buffer, false)
            .map_err(opus_error("decode"))?;
        Ok(self.buffer.get(..n).unwrap_or_default())
    }

    /// One frame of concealment (Opus PLC) for a packet that is not there:
    /// it continues the voice smoothly for a frame or two, then fades.
    pub fn conceal(&mut self) -> Result<&[f32], MediaError> {
        let frame = self
            .buffer
            .get_mut(..FRAME_SAMPLES)
            .ok_or(MediaError::Opus {
                step: "conceal",
                reason: "buffer too small".into(),
            })?;
        let n = self
            .decoder
            .decode_float(&[], frame, false)
            .map_err(opus_error("conceal"))?;
        Ok(self.buffer.get(..n).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, frame: usize) -> Vec<f32> {
        (0..FRAME_SAMPLES)
            .map(|i| {
                let t = (frame * FRAME_SAMPLES + i) as f32 / SAMPLE_RATE as f32;
                0.5 * (2.0 * std::f32::consts::PI * hz * t).sin()
            })
            .collect()
    }

    #[test]
    fn a_tone_survives_encoding_at_speech_bitrates() {
        let mut enc = VoiceEncoder::new().unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let mut bytes = 0;
        let mut out = Vec::new();
        for f in 0..50 {
            let packet = enc.encode(&tone(440.0, f)).unwrap();
            assert!(packet.len() <= MAX_VOICE_PACKET_LEN);
            bytes += packet.len();
            out.extend_from_slice(dec.decode(&packet).unwrap());
        }
        assert_eq!(out.len(), 50 * FRAME_SAMPLES);
        // One second of tone at about 24 kbit/s (VBR: within a factor).
        assert!((1_000..=6_000).contains(&bytes), "{bytes} bytes for 1 s");
        // The decoded level is the tone's (0.5 peak = -9 dBFS RMS), after
        // the codec's start-up.
        let level = super::super::level_dbfs(&out[24_000..]);
        assert!((-12.0..=-7.0).contains(&level), "level {level} dBFS");
    }

    #[test]
    fn concealment_fills_one_frame_and_garbage_is_an_error_not_a_panic() {
        let mut enc = VoiceEncoder::new().unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let packet = enc.encode(&tone(300.0, 0)).unwrap();
        dec.decode(&packet).unwrap();
        assert_eq!(dec.conceal().unwrap().len(), FRAME_SAMPLES);
        // A TOC byte claiming a code-3 packet with no frame count.
        assert!(dec.decode(&[0xff]).is_err());
        assert!(enc.encode(&[0.0; 10]).is_err());
    }
}
