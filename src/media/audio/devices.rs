//! Microphones and speakers: listing them (`vchat devices`) and finding
//! the one `--mic N` or `--speaker N` names.
//!
//! cpal picks the host: with a PulseAudio (or PipeWire's pulse) socket it
//! talks to the sound server directly, otherwise it uses ALSA.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait};

use crate::media::MediaError;

/// Capture or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    fn noun(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }
}

/// The microphones and speakers the sound system offers, by number.
#[derive(Debug, Clone, Default)]
pub struct AudioDeviceList {
    pub microphones: Vec<String>,
    pub speakers: Vec<String>,
    /// Which of each is the default, if any.
    pub default_microphone: Option<String>,
    pub default_speaker: Option<String>,
}

/// How many times a sound server that is there gets to answer before
/// vchat falls back to ALSA. cpal gives it a short time each, and a loaded
/// machine can miss one; ALSA's route to the same server is far worse
/// (seconds of delay through its pulse plugin).
const SOUND_SERVER_ATTEMPTS: u32 = 5;

/// The sound system: PulseAudio (or PipeWire's pulse server) when its
/// socket is there, else ALSA.
pub(crate) fn host() -> cpal::Host {
    #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "netbsd"))]
    if cpal::available_hosts().contains(&cpal::HostId::PulseAudio) {
        for _ in 0..SOUND_SERVER_ATTEMPTS {
            if let Ok(host) = cpal::host_from_id(cpal::HostId::PulseAudio) {
                return host;
            }
        }
        tracing::warn!(
            "the PulseAudio server did not answer {SOUND_SERVER_ATTEMPTS} times; using ALSA"
        );
    }
    cpal::default_host()
}

fn name_of(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.to_string())
        .or_else(|_| device.id().map(|id| id.to_string()))
        .unwrap_or_else(|_| "(unnamed)".into())
}

fn devices(direction: Direction) -> Result<Vec<cpal::Device>, MediaError> {
    let host = host();
    let list = match direction {
        Direction::Input => host.input_devices().map(|d| d.collect()),
        Direction::Output => host.output_devices().map(|d| d.collect()),
    };
    list.map_err(|e| MediaError::AudioDevice {
        device: format!("{}s", direction.noun()),
        problem: format!("cannot list them: {e}"),
    })
}

impl AudioDeviceList {
    /// Asks the sound system.
    pub fn query() -> Result<Self, MediaError> {
        let host = host();
        Ok(AudioDeviceList {
            microphones: devices(Direction::Input)?.iter().map(name_of).collect(),
            speakers: devices(Direction::Output)?.iter().map(name_of).collect(),
            default_microphone: host.default_input_device().as_ref().map(name_of),
            default_speaker: host.default_output_device().as_ref().map(name_of),
        })
    }
}

/// The device `index` names (of `vchat devices`), or the default one, with
/// its name. Errors say what exists and what to do.
pub(crate) fn find_device(
    direction: Direction,
    index: Option<usize>,
) -> Result<(cpal::Device, String), MediaError> {
    let noun = direction.noun();
    let host = host();
    let device = match index {
        None => match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .ok_or_else(|| MediaError::AudioDevice {
            device: noun.into(),
            problem: format!(
                "the sound system ({}) has no default {noun}; see `vchat devices`",
                host.id().name()
            ),
        })?,
        Some(index) => {
            let all = devices(direction)?;
            let count = all.len();
            all.into_iter()
                .nth(index)
                .ok_or_else(|| MediaError::AudioDevice {
                    device: format!("{noun} {index}"),
                    problem: format!(
                        "does not exist: there are {count} (numbered from 0, see `vchat devices`)"
                    ),
                })?
        }
    };
    let name = name_of(&device);
    Ok((device, name))
}

/// How long the sound system may take to open a stream.
const OPEN_LIMIT: Duration = Duration::from_secs(10);

/// Runs `build` on a thread of its own and keeps the stream it makes there
/// until `stop` is set: a cpal stream must stay on the thread that made it,
/// and the callers' threads have other work. Returns the thread and the
/// device's name once the stream plays, or why it could not (`what` names
/// the device in errors: "microphone", "speaker").
pub(crate) fn keep_stream_on_thread(
    what: &'static str,
    stop: Arc<AtomicBool>,
    build: impl FnOnce() -> Result<(cpal::Stream, String), MediaError> + Send + 'static,
) -> Result<(JoinHandle<()>, String), MediaError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("vchat-{what}"))
        .spawn(move || {
            let stream = match build() {
                Ok((stream, name)) => {
                    let _ = ready_tx.send(Ok(name));
                    stream
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(stream);
        })
        .map_err(|e| MediaError::AudioDevice {
            device: what.into(),
            problem: format!("cannot start its thread: {e}"),
        })?;
    let name = ready_rx
        .recv_timeout(OPEN_LIMIT)
        .map_err(|_| MediaError::AudioDevice {
            device: what.into(),
            problem: format!(
                "the sound system did not answer within {} s",
                OPEN_LIMIT.as_secs()
            ),
        })??;
    Ok((thread, name))
}

/// Prints the microphones and speakers, numbered as `--mic` and `--speaker`
/// take them.
pub fn print_audio_devices(out: &mut dyn Write) -> std::io::Result<()> {
    match AudioDeviceList::query() {
        Ok(list) => {
            let host = host();
            writeln!(out, "Sound system: {}", host.id().name())?;
            for (title, names, default, flag) in [
                (
                    "Microphones",
                    &list.microphones,
                    &list.default_microphone,
                    "--mic",
                ),
                (
                    "Speakers",
                    &list.speakers,
                    &list.default_speaker,
                    "--speaker",
                ),
            ] {
                if names.is_empty() {
                    writeln!(out, "{title}: none")?;
                    continue;
                }
                writeln!(out, "{title} ({flag} N):")?;
                for (i, name) in names.iter().enumerate() {
                    let mark = if default.as_ref() == Some(name) {
                        " (default)"
                    } else {
                        ""
                    };
                    writeln!(out, "  {i}: {name}{mark}")?;
                }
            }
        }
        Err(e) => writeln!(out, "Sound devices: {e}")?,
    }
    Ok(())
}
