//! `--audio-source`, parsed once with its limits.

use std::path::PathBuf;
use std::str::FromStr;

use crate::media::MediaError;

/// Where our voice comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSourceSpec {
    /// A microphone: the default one, or number N of `vchat devices`.
    Mic { index: Option<usize> },
    /// A sine tone of this many hertz (for tests and sound checks).
    Tone { hz: f32 },
    /// A 1 kHz beep of 100 ms at the start of every second of the clock,
    /// silence between: with `--source flash`, for measuring lip sync.
    Beep,
    /// A WAV file (48 kHz), played in a loop.
    Wav { path: PathBuf },
}

impl Default for AudioSourceSpec {
    fn default() -> Self {
        AudioSourceSpec::Mic { index: None }
    }
}

impl FromStr for AudioSourceSpec {
    type Err = MediaError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || MediaError::InvalidAudioSource {
            input: input.to_owned(),
        };
        if input == "mic" {
            return Ok(AudioSourceSpec::Mic { index: None });
        }
        if input == "beep" {
            return Ok(AudioSourceSpec::Beep);
        }
        if let Some(n) = input.strip_prefix("mic:") {
            let index = n.parse().map_err(|_| invalid())?;
            return Ok(AudioSourceSpec::Mic { index: Some(index) });
        }
        if let Some(hz) = input.strip_prefix("tone:") {
            let hz: f32 = hz.parse().map_err(|_| invalid())?;
            if !(20.0..=20_000.0).contains(&hz) {
                return Err(invalid());
            }
            return Ok(AudioSourceSpec::Tone { hz });
        }
        if let Some(path) = input.strip_prefix("wav:") {
            if path.is_empty() {
                return Err(invalid());
            }
            return Ok(AudioSourceSpec::Wav { path: path.into() });
        }
        Err(invalid())
    }
}

impl std::fmt::Display for AudioSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioSourceSpec::Mic { index: None } => f.write_str("mic"),
            AudioSourceSpec::Mic { index: Some(n) } => write!(f, "mic:{n}"),
            AudioSourceSpec::Tone { hz } => write!(f, "tone:{hz}"),
            AudioSourceSpec::Beep => f.write_str("beep"),
            AudioSourceSpec::Wav { path } => write!(f, "wav:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_refuses_the_rest() {
        assert_eq!(
            "mic".parse::<AudioSourceSpec>().ok(),
            Some(AudioSourceSpec::Mic { index: None })
        );
        assert_eq!(
            "mic:2".parse::<AudioSourceSpec>().ok(),
            Some(AudioSourceSpec::Mic { index: Some(2) })
        );
        assert_eq!(
            "tone:440".parse::<AudioSourceSpec>().ok(),
            Some(AudioSourceSpec::Tone { hz: 440.0 })
        );
        assert_eq!(
            "wav:a.wav".parse::<AudioSourceSpec>().ok(),
            Some(AudioSourceSpec::Wav {
                path: "a.wav".into()
            })
        );
        for bad in ["", "tone:", "tone:5", "tone:x", "mic:-1", "wav:", "speaker"] {
            let e = bad.parse::<AudioSourceSpec>().unwrap_err().to_string();
            assert!(e.contains("expected mic"), "{bad}: {e}");
        }
    }
}
