//! Helpers shared by the integration tests: running the real `vchat` binary,
//! making throwaway identities, and opening pinned channels on ephemeral ports.
#![allow(dead_code)] // each test binary uses a different subset

pub mod in_memory;
pub mod relay;
pub mod wav;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use vchat::identity::{Identity, PinnedPeer};
use vchat::net::{Listener, ListenerOptions, PinSet};

/// A `vchat` command with a clean environment for identity lookups.
pub fn vchat() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vchat"));
    cmd.env_remove("VCHAT_DIR").env("RUST_LOG", "info");
    cmd
}

/// Runs `vchat ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    vchat().args(args).output().expect("run vchat")
}

/// Runs `vchat --dir DIR ARGS`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    vchat()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run vchat")
}

/// `vchat --dir DIR trust PEER_DIR/cert.pem --name a --address ADDRESS
/// --force`: stores where the listener of [`paired_identities`] is, so
/// `vchat call a` dials it; returns what trust printed.
pub fn trust_a_at(dir: &Path, a_dir: &Path, address: &str) -> String {
    let a_cert = a_dir.join("cert.pem");
    run_ok(
        dir,
        &[
            "trust",
            a_cert.to_str().unwrap(),
            "--name",
            "a",
            "--address",
            address,
            "--force",
        ],
    )
}

/// [`run_in`] with extra environment variables.
pub fn run_in_env(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    vchat()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run vchat")
}

/// Runs `vchat --dir DIR ARGS`, asserting success, and returns stdout.
pub fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    assert!(
        out.status.success(),
        "vchat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `vchat --dir DIR ARGS`, asserting failure, and returns stderr.
pub fn run_err(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    assert!(
        !out.status.success(),
        "vchat {args:?} should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh in-memory identity.
pub fn identity(name: &str) -> Identity {
    Identity::generate(name).expect("generate identity")
}

/// The pin for an identity, under `name`.
pub fn pin(identity: &Identity, name: &str) -> PinnedPeer {
    PinnedPeer {
        name: name.to_owned(),
        certificate: identity.certificate().clone(),
    }
}

/// A listener on an ephemeral loopback port pinning `peers`.
pub async fn listen(identity: &Identity, peers: Vec<PinnedPeer>) -> Listener {
    listen_with(identity, peers, ListenerOptions::default()).await
}

/// Like [`listen`], with explicit options.
pub async fn listen_with(
    identity: &Identity,
    peers: Vec<PinnedPeer>,
    options: ListenerOptions,
) -> Listener {
    Listener::bind("127.0.0.1:0", identity, PinSet::new(peers), options)
        .await
        .expect("bind listener")
}

/// An upper bound on any single wait in a test, so a bug shows up as a
/// failure instead of a hung test run. Not a synchronisation mechanism.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Awaits `fut` or fails the test if it takes longer than [`HANG_GUARD`].
pub async fn guard<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {HANG_GUARD:?}"))
}

/// A running `vchat` process whose stdout and stderr are collected by
/// threads, so the test can wait for a line without blocking the child.
pub struct Running {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(bool, String)>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Running {
    /// Starts `vchat ARGS` with piped output.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Running {
        Running::spawn_command(vchat().args(args).envs(envs.iter().copied()))
    }

    /// Starts `WRAPPER... vchat ARGS` (for example under `faketime`).
    pub fn spawn_under(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_vchat"))
            .args(args)
            .env_remove("VCHAT_DIR")
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied());
        Running::spawn_command(&mut cmd)
    }

    fn spawn_command(cmd: &mut Command) -> Running {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vchat");
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for (is_stdout, pipe) in [
            (true, Box::new(out) as Box<dyn std::io::Read + Send>),
            (false, Box::new(err)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send((is_stdout, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Waits for a line (stdout or stderr) containing `needle`; fails the
    /// test after `limit` (a hang guard) or if the process ends first.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((is_stdout, line)) => {
                    let found = line.contains(needle);
                    if is_stdout {
                        self.stdout.push(line.clone());
                    } else {
                        self.stderr.push(line.clone());
                    }
                    if found {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line containing {needle:?} within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                        self.stdout.join("\n"),
                        self.stderr.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the process to exit (killing it after `limit`, a hang
    /// guard) and collects the rest of its output.
    pub fn finish(mut self, limit: Duration) -> Finished {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                panic!(
                    "vchat did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.join("\n"),
                    self.stderr.join("\n")
                );
            }
            // Collect output while waiting; the timeout paces the loop.
            if let Ok((is_stdout, line)) = self.lines.recv_timeout(Duration::from_millis(50)) {
                if is_stdout {
                    self.stdout.push(line);
                } else {
                    self.stderr.push(line);
                }
            }
        };
        self.drain();
        Finished {
            status,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }

    fn drain(&mut self) {
        // The reader threads end at EOF once the process is gone.
        while let Ok((is_stdout, line)) = self.lines.recv_timeout(Duration::from_secs(5)) {
            if is_stdout {
                self.stdout.push(line);
            } else {
                self.stderr.push(line);
            }
        }
    }

    /// Sends a signal with the `kill` command (SIGSTOP, SIGCONT, SIGKILL...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

/// Waits for both ends of a call, `first` first (the end whose exit ends
/// the call, or whose output the test needs first), each within `limit`,
/// and checks that both exited 0.
pub fn finish_both(first: Running, second: Running, limit: Duration) -> (Finished, Finished) {
    let first = first.finish(limit);
    let second = second.finish(limit);
    assert!(first.status.success(), "{}", first.all_output());
    assert!(second.status.success(), "{}", second.all_output());
    (first, second)
}

/// A process that has exited, with all its output.
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Finished {
    pub fn all_output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }

    /// The `--stats json` lines whose `event` is `event`, in order.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.stdout
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// The `summary` line of a `--stats json` run.
    pub fn summary(&self) -> serde_json::Value {
        self.events("summary")
            .pop()
            .unwrap_or_else(|| panic!("no summary\n{}", self.all_output()))
    }
}

/// One second of camera-like 720p30 (ffmpeg's testsrc2 under heavy
/// temporal grain), in `dir`: a picture H.264 cannot code in 2 Mbit/s
/// without giving something up, unlike vchat's own pattern.
pub fn camera_like_y4m(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("camera-like.y4m");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi"])
        .args(["-i", "testsrc2=size=1280x720:rate=30,noise=alls=24:allf=t"])
        .args(["-t", "1", "-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg made the clip");
    path
}

/// A headless end sending `clip` (see [`camera_like_y4m`]) as H.264, with
/// its stats as JSON lines.
pub fn headless_h264_from(clip: &Path) -> Vec<&str> {
    vec![
        "--headless",
        "--source",
        clip.to_str().expect("a UTF-8 temporary path"),
        "--codec",
        "h264",
        "--stats",
        "json",
    ]
}

/// The spoken check an end printed on stderr ("spoken check: 123 456. ..."),
/// checked to be six digits in two groups (PROTOCOL.md 2.4).
pub fn spoken_code(end: &Finished) -> String {
    const MARK: &str = "spoken check: ";
    let line = end
        .stderr
        .iter()
        .find(|l| l.contains(MARK))
        .unwrap_or_else(|| panic!("no spoken check printed:\n{}", end.all_output()));
    let at = line.find(MARK).unwrap() + MARK.len();
    let code: String = line[at..].chars().take(7).collect();
    assert!(
        code.len() == 7
            && code.as_bytes()[3] == b' '
            && code.chars().filter(char::is_ascii_digit).count() == 6,
        "not six digits in two groups: {code:?} in {line}"
    );
    code
}

/// Two identities on disk that trust each other: (dir_a, dir_b), each with
/// the other pinned as "a" / "b".
pub fn paired_identities() -> (tempfile::TempDir, tempfile::TempDir) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run_ok(a.path(), &["keygen", "--name", "Alice"]);
    run_ok(b.path(), &["keygen", "--name", "Bob"]);
    let a_cert = a.path().join("cert.pem");
    let b_cert = b.path().join("cert.pem");
    run_ok(
        a.path(),
        &["trust", b_cert.to_str().unwrap(), "--name", "b"],
    );
    run_ok(
        b.path(),
        &["trust", a_cert.to_str().unwrap(), "--name", "a"],
    );
    (a, b)
}

/// Parses the address from the listener's "vchat: listening on ADDR" line.
pub fn listening_addr(line: &str) -> String {
    line.rsplit(' ').next().unwrap().trim().to_owned()
}

/// Starts `vchat --dir DIR listen --bind 127.0.0.1:0 --peer b --once ARGS`
/// (the identities of [`paired_identities`]; one call, then it exits) and
/// waits until it listens; returns the process and its address.
pub fn spawn_listener(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Running, String) {
    let mut all = vec!["--once"];
    all.extend_from_slice(args);
    spawn_serving_listener(dir, &all, envs)
}

/// [`spawn_listener`] without `--once`: it serves call after call.
pub fn spawn_serving_listener(
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Running, String) {
    let dir = dir.to_str().unwrap();
    let mut all = vec![
        "--dir",
        dir,
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--peer",
        "b",
    ];
    all.extend_from_slice(args);
    let mut listener = Running::spawn(&all, envs);
    let line = listener.wait_for("listening on", Duration::from_secs(30));
    (listener, listening_addr(&line))
}

/// Starts `vchat --dir DIR call ADDR --peer a ARGS`.
pub fn spawn_caller(dir: &Path, addr: &str, args: &[&str], envs: &[(&str, &str)]) -> Running {
    let dir = dir.to_str().unwrap();
    let mut all = vec!["--dir", dir, "call", addr, "--peer", "a"];
    all.extend_from_slice(args);
    Running::spawn(&all, envs)
}

/// Holds the other tests of the same file back while it lives: for tests
/// whose calls would otherwise share this machine's two cores with each
/// other and measure the crowding instead of what they test.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
