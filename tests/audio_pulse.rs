//! The device path, for real: a PulseAudio server with a null sink, started
//! here (and stopped by PID), stands in for a sound card. The caller plays
//! the listener's tone into the sink with its speaker code and captures the
//! sink's monitor with its microphone code, so the tone comes back to the
//! listener, who records it: cpal's output and input both ran. The same
//! loop, with the caller's own voice played into the sink as well, shows
//! the echo canceller at work.
//!
//! Needs `pulseaudio` and `pactl` (scripts/setup.sh installs them): fails
//! under CI (CI=1) without them, and is skipped, saying why, elsewhere.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{finish_both, paired_identities, spawn_caller, spawn_listener, vchat, wav};

const CALL_LIMIT: Duration = Duration::from_secs(90);

/// A private sound server: its own runtime folder, one null sink.
struct SoundServer {
    child: Child,
    runtime: tempfile::TempDir,
}

impl SoundServer {
    fn start() -> Option<SoundServer> {
        let runtime = tempfile::tempdir().unwrap();
        let mut perms = std::fs::metadata(runtime.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(runtime.path(), perms).unwrap();
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--disable-shm",
                "-n",
                "--load=module-native-protocol-unix",
                "--load=module-null-sink sink_name=vnull",
            ])
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HOME", runtime.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = SoundServer { child, runtime };
        // Ready when it answers (polled: it takes some 100 ms).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let info = server.pactl(&["info"]);
            if info.is_some_and(|i| i.contains("Default Sink: vnull")) {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pulseaudio did not answer within 20 s");
    }

    fn pactl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("pactl")
            .args(args)
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![(
            "XDG_RUNTIME_DIR",
            self.runtime.path().to_str().unwrap().to_owned(),
        )]
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn missing(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
}

fn sound_server() -> Option<SoundServer> {
    if missing("pulseaudio") || missing("pactl") {
        assert!(
            std::env::var_os("CI").is_none(),
            "pulseaudio is not installed (scripts/setup.sh installs it)"
        );
        eprintln!("skipped: pulseaudio is not installed (scripts/setup.sh installs it)");
        return None;
    }
    SoundServer::start()
}

#[test]
fn vchat_devices_lists_the_sound_servers_sink_and_its_monitor() {
    let Some(server) = sound_server() else {
        return;
    };
    let env = server.env();
    let out = vchat()
        .arg("devices")
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Sound system: PulseAudio"), "{text}");
    assert!(text.contains("Monitor of Null Output"), "{text}");
    assert!(text.contains("0: Null Output (default)"), "{text}");
}

#[test]
fn a_tone_goes_through_a_real_speaker_and_microphone() {
    let Some(server) = sound_server() else {
        return;
    };
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = paired_identities();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("echo.wav");
    // The caller's defaults: the sound server's sink and its monitor. The
    // echo canceller would take the tone out (see the next test).
    let mut caller_args = MEDIA.to_vec();
    caller_args.extend(["--duration", "8", "--no-echo-cancel"]);
    let (listener, addr) = spawn_tone_listener(a.path(), &recording, &env);
    let caller = spawn_caller(b.path(), &addr, &caller_args, &env);
    let (caller, _) = finish_both(caller, listener, CALL_LIMIT);
    let log = caller.all_output();
    assert!(
        log.contains("sending voice from microphone Monitor of Null Output"),
        "{log}"
    );
    assert!(
        log.contains("playing the peer's voice on speaker Null Output"),
        "{log}"
    );
    // A normal hang-up is not an error (the sound server's client library
    // used to log "ERROR Reactor error: Client disconnected" at every one).
    assert!(!log.contains("ERROR"), "{log}");
    heard_the_tone(&recording);
}

/// The sink's monitor is a perfect echo path: whatever the caller's speaker
/// plays comes straight back into its microphone. While the call runs,
/// `paplay` plays the caller's own "voice" (a 1 kHz tone) into the same
/// sink, so the microphone hears echo (the listener's 440 Hz) and near-end
/// speech at once. Without echo cancellation the listener hears its own
/// tone back; with it (the default), the 440 Hz echo is typically (the
/// median 100 ms) at least 20 dB weaker, and the caller's 1 kHz comes
/// through within 6 dB in the louder quarter of the 100 ms windows. (The
/// median of ours is printed too: on a starved machine it varied by 10 dB
/// and more between runs with the canceller on *and* off, as the sound
/// server and the call lose samples; the same signals offline keep ours at
/// -0.4 dB. One CI run had ours 27 dB down in the median, 3.7 dB in the
/// loudest window; the cause is not found.)
#[test]
fn the_echo_canceller_removes_the_peers_voice_and_keeps_ours() {
    let Some(server) = sound_server() else {
        return;
    };
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.wav");
    // Longer than any call here, however slow the machine is to set one
    // up (paplay is stopped when the call ends): a 14 s tone once ended
    // before a loaded CI machine's call did, and "our voice" was missing
    // from the half the test measures.
    write_tone(&ours, 1000.0, 0.1, 40.0);
    let mut levels = Vec::new();
    for cancel in [false, true] {
        let (a, b) = paired_identities();
        let recording = dir.path().join(format!("heard-{cancel}.wav"));
        let mut caller_args = MEDIA.to_vec();
        caller_args.extend(["--duration", "10"]);
        if !cancel {
            caller_args.push("--no-echo-cancel");
        }
        let (listener, addr) = spawn_tone_listener(a.path(), &recording, &env);
        let mut talker = Command::new("paplay")
            .arg("--device=vnull")
            .arg(&ours)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("run paplay");
        let caller = spawn_caller(b.path(), &addr, &caller_args, &env).finish(CALL_LIMIT);
        let listener = listener.finish(CALL_LIMIT);
        let _ = talker.kill();
        let _ = talker.wait();
        assert!(caller.status.success(), "{}", caller.all_output());
        assert!(listener.status.success(), "{}", listener.all_output());
        assert_eq!(
            caller.all_output().contains("echo cancellation on"),
            cancel,
            "{}",
            caller.all_output()
        );
        let samples = wav::read(&recording);
        let voiced = wav::voiced(&samples);
        // The second half: the canceller has had seconds to learn.
        let settled = &voiced[voiced.len() / 2..];
        let (echo, near) = (level_db(settled, 440.0), level_db(settled, 1000.0));
        println!(
            "echo cancellation {cancel}: 440 Hz (echo) median {:.1} dB, 1 kHz (ours) upper \
             quartile {:.1} dB",
            echo.median, near.upper_quartile
        );
        let (echo, near) = (echo.median, near.upper_quartile);
        levels.push((echo, near));
    }
    let ((echo_off, near_off), (echo_on, near_on)) = (levels[0], levels[1]);
    assert!(
        echo_off - echo_on >= 20.0,
        "echo only {:.1} dB weaker with cancellation",
        echo_off - echo_on
    );
    assert!(
        near_on >= near_off - 6.0,
        "our voice lost {:.1} dB",
        near_off - near_on
    );
}

/// Both ends' video: small, so the test is about sound.
const MEDIA: [&str; 5] = ["--headless", "--source", "test", "--size", "160x120"];

/// A listener sending a 440 Hz tone, playing nothing, and recording what
/// comes back from the caller into `recording`.
fn spawn_tone_listener(
    dir: &Path,
    recording: &Path,
    env: &[(&str, &str)],
) -> (common::Running, String) {
    let mut args = MEDIA.to_vec();
    args.extend([
        "--audio-source",
        "tone:440",
        "--speaker",
        "none",
        "--record-audio",
        recording.to_str().unwrap(),
    ]);
    spawn_listener(dir, &args, env)
}

/// A mono 48 kHz WAV of a sine tone.
fn write_tone(path: &Path, hz: f64, amplitude: f64, secs: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(secs * wav::RATE) as usize {
        let t = i as f64 / wav::RATE;
        let x = amplitude * (std::f64::consts::TAU * hz * t).sin();
        writer.write_sample((x * 32767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// The typical power at `hz`, in dB: the median over 100 ms windows (what
/// a listener hears most of the time; a moment of re-learning after the
/// sound server hiccups on a loaded machine does not decide it).
/// The level at `hz` over 100 ms windows: the median (what is heard most
/// of the time) and the upper quartile (what is heard a quarter of it).
fn level_db(samples: &[f32], hz: f64) -> Levels {
    let mut windows: Vec<f64> = samples
        .chunks_exact(4800)
        .map(|w| 10.0 * wav::power_at(w, hz).max(1e-12).log10())
        .collect();
    windows.sort_by(f64::total_cmp);
    let at = |share: f64| {
        let index = ((windows.len() as f64 * share) as usize).min(windows.len().saturating_sub(1));
        windows.get(index).copied().unwrap_or(-120.0)
    };
    let levels = Levels {
        median: at(0.5),
        upper_quartile: at(0.75),
    };
    println!(
        "  {hz} Hz: median {:.1} dB, upper quartile {:.1} dB, loudest 100 ms {:.1} dB",
        levels.median,
        levels.upper_quartile,
        at(1.0)
    );
    levels
}

#[derive(Debug, Clone, Copy)]
struct Levels {
    median: f64,
    upper_quartile: f64,
}

/// The tone made the round trip: at least two seconds of it (the sound
/// server starts a capture stream late), at 440 Hz.
fn heard_the_tone(path: &Path) {
    let samples = wav::read(path);
    let voiced = wav::voiced(&samples);
    let secs = voiced.len() as f64 / wav::RATE;
    assert!(secs >= 2.0, "only {secs:.2} s came back");
    let hz = wav::dominant_hz(voiced);
    assert!((hz - 440.0).abs() <= 10.0, "{hz} Hz came back, not 440");
}
