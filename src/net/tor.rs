//! Tor's control port, as much of it as publishing a listener as a v3 onion
//! service needs (tor's control-spec.txt): authenticate with the cookie
//! (SAFECOOKIE when tor offers it),
//! `ADD_ONION` with the identity's own onion key, and wait until a
//! directory holds the service's descriptor (`650 HS_DESC UPLOADED`); and
//! [`start_tor`], which runs a tor of vchat's own when the user has none
//! running.
//!
//! Why by hand: the crates for this are unmaintained or blocking and pull
//! in a second async runtime's worth of dependencies; the protocol is lines
//! of text. The onion service lives as long as this connection: tor removes
//! it when vchat exits (no `Detach`), so a crashed vchat leaves nothing
//! published. Replies are read with a bound on line length and line count:
//! the control port is local, but a wrong port must not make vchat read
//! without end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Longest reply line read; tor's are far shorter.
const MAX_LINE: usize = 16 * 1024;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 1024;
/// How long one command may take to be answered.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong with tor's control port, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum TorError {
    #[error("cannot reach tor's control port at {addr}: {source}; start tor with `ControlPort {port}` and `CookieAuthentication 1` (or give --tor-control the port it uses)", port = .addr.port())]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("tor's control port at {addr}: {problem}")]
    Protocol { addr: SocketAddr, problem: String },
    #[error("tor refused `{command}`: {reply}")]
    Refused { command: String, reply: String },
    #[error("cannot read tor's authentication cookie {path}: {source}; vchat must run as a user that may read it (for Debian's tor service: a member of the debian-tor group)")]
    Cookie {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tor's control port at {0} accepts neither cookie nor open authentication: set `CookieAuthentication 1` in the torrc")]
    NoUsableAuth(SocketAddr),
    #[error("tor is not installed: install it (Debian/Ubuntu: sudo apt-get install tor), or give --tor-control the control port of a tor you run")]
    NotInstalled,
    #[error("cannot start tor: {problem}")]
    Start { problem: String },
    #[error("tor exited ({status}) while starting; its log is {}", .log.display())]
    Exited { status: String, log: PathBuf },
    #[error("tor did not connect to the Tor network within {limit:?}: the network may block Tor (a bridge in --torrc can help); its log is {}", .log.display())]
    NotBootstrapped { limit: Duration, log: PathBuf },
    #[error("the onion service was not published within {0:?}: tor may still be connecting to the Tor network (check its log)")]
    NotPublished(Duration),
}

/// An authenticated connection to tor's control port.
pub struct TorControl {
    addr: SocketAddr,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A published onion service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnionService {
    /// The 56-character v3 service ID (the address without ".onion").
    pub service_id: String,
    /// The key tor made for a new service, "ED25519-V3:<base64>", to keep.
    pub new_key: Option<String>,
}

impl TorControl {
    /// Connects to the control port at `addr` and authenticates (cookie, or
    /// none if tor asks for none).
    pub async fn connect(addr: SocketAddr) -> Result<Self, TorError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| TorError::Connect { addr, source })?;
        let (read, writer) = stream.into_split();
        let mut control = TorControl {
            addr,
            reader: BufReader::new(read),
            writer,
        };
        control.authenticate().await?;
        Ok(control)
    }

    async fn authenticate(&mut self) -> Result<(), TorError> {
        let info = self.command("PROTOCOLINFO 1").await?;
        let auth = info
            .iter()
            .find_map(|l| l.strip_prefix("AUTH "))
            .ok_or_else(|| self.problem("PROTOCOLINFO has no AUTH line"))?;
        let methods = auth
            .split_whitespace()
            .find_map(|w| w.strip_prefix("METHODS="))
            .unwrap_or_default();
        let has = |m: &str| methods.split(',').any(|x| x == m);
        if has("NULL") {
            self.command("AUTHENTICATE").await?;
        } else if has("SAFECOOKIE") {
            let path = cookie_file(auth).ok_or_else(|| self.problem("no COOKIEFILE given"))?;
            let cookie = read_cookie(&path)?;
            self.authenticate_safecookie(&cookie).await?;
        } else if has("COOKIE") {
            let path = cookie_file(auth).ok_or_else(|| self.problem("no COOKIEFILE given"))?;
            let cookie = read_cookie(&path)?;
            self.command(&format!("AUTHENTICATE {}", hex(&cookie)))
                .await?;
        } else {
            return Err(TorError::NoUsableAuth(self.addr));
        }
        Ok(())
    }

    /// SAFECOOKIE (control-spec 3.24): proves to tor that we read the
    /// cookie without sending it, and checks that the port is tor's (it
    /// knows the cookie too) before we send anything derived from it; plain
    /// COOKIE would hand the cookie to whatever listens on the port.
    async fn authenticate_safecookie(&mut self, cookie: &[u8]) -> Result<(), TorError> {
        let mut client_nonce = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut client_nonce)
            .map_err(|_| self.problem("no randomness for the SAFECOOKIE nonce"))?;
        let reply = self
            .command(&format!("AUTHCHALLENGE SAFECOOKIE {}", hex(&client_nonce)))
            .await?;
        let field = |name: &str| {
            reply
                .iter()
                .flat_map(|l| l.split_whitespace())
                .find_map(|w| w.strip_prefix(name))
                .and_then(unhex)
        };
        let (Some(server_hash), Some(server_nonce)) = (field("SERVERHASH="), field("SERVERNONCE="))
        else {
            return Err(self.problem("AUTHCHALLENGE gave no SERVERHASH and SERVERNONCE"));
        };
        let message = [cookie, &client_nonce, &server_nonce].concat();
        let key = |key: &[u8]| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        // Compared in constant time.
        if ring::hmac::verify(&key(SAFECOOKIE_SERVER_KEY), &message, &server_hash).is_err() {
            return Err(self.problem(
                "it does not know tor's authentication cookie: this is not the tor that wrote the cookie file",
            ));
        }
        let client_hash = ring::hmac::sign(&key(SAFECOOKIE_CLIENT_KEY), &message);
        self.command(&format!("AUTHENTICATE {}", hex(client_hash.as_ref())))
            .await?;
        Ok(())
    }

    /// Publishes `virtual_port` of an onion service, forwarding to
    /// `target`, with `key` ("ED25519-V3:...") or a new key. Returns once
    /// tor has taken it; [`TorControl::wait_published`] waits for a
    /// directory to hold it.
    pub async fn add_onion(
        &mut self,
        key: Option<&str>,
        virtual_port: u16,
        target: SocketAddr,
    ) -> Result<OnionService, TorError> {
        self.command("SETEVENTS HS_DESC").await?;
        let key_arg = key.unwrap_or("NEW:ED25519-V3");
        let flags = if key.is_some() {
            " Flags=DiscardPK"
        } else {
            ""
        };
        let reply = self
            .command(&format!(
                "ADD_ONION {key_arg}{flags} Port={virtual_port},{target}"
            ))
            .await?;
        let service_id = reply
            .iter()
            .find_map(|l| l.strip_prefix("ServiceID="))
            .filter(|id| id.len() == 56 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| self.problem("ADD_ONION gave no v3 ServiceID"))?
            .to_owned();
        let new_key = reply
            .iter()
            .find_map(|l| l.strip_prefix("PrivateKey="))
            .map(str::to_owned);
        Ok(OnionService {
            service_id,
            new_key,
        })
    }

    /// Waits for `650 HS_DESC UPLOADED <service_id>`: one directory holds
    /// the descriptor, so callers can find the service.
    pub async fn wait_published(
        &mut self,
        service_id: &str,
        limit: Duration,
    ) -> Result<(), TorError> {
        let wait = async {
            loop {
                let (code, lines) = self.read_reply().await?;
                let uploaded = code == 650
                    && lines.iter().any(|l| {
                        let mut words = l.split_whitespace();
                        words.next() == Some("HS_DESC")
                            && words.next() == Some("UPLOADED")
                            && words.next() == Some(service_id)
                    });
                if uploaded {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| TorError::NotPublished(limit))?
    }

    /// Sends one command and returns its 250 reply's lines (events that
    /// arrive meanwhile are skipped).
    async fn command(&mut self, command: &str) -> Result<Vec<String>, TorError> {
        let addr = self.addr;
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .map_err(|e| TorError::Protocol {
                addr,
                problem: e.to_string(),
            })?;
        let verb = command.split_whitespace().next().unwrap_or("").to_owned();
        let reply = tokio::time::timeout(REPLY_TIMEOUT, async {
            loop {
                let (code, lines) = self.read_reply().await?;
                if code != 650 {
                    return Ok::<_, TorError>((code, lines));
                }
            }
        })
        .await
        .map_err(|_| self.problem(&format!("no answer to {verb} within {REPLY_TIMEOUT:?}")))??;
        match reply {
            (250, lines) => Ok(lines),
            (_, lines) => Err(TorError::Refused {
                command: verb,
                reply: lines.join(" "),
            }),
        }
    }

    /// One reply: its status code and its lines without the code, data
    /// blocks ("250+...", ending with ".") folded in.
    async fn read_reply(&mut self) -> Result<(u16, Vec<String>), TorError> {
        let mut lines = Vec::new();
        loop {
            if lines.len() >= MAX_REPLY_LINES {
                return Err(self.problem("a reply of too many lines"));
            }
            let line = self.read_line().await?;
            let (code, rest) = parse_status(&line)
                .ok_or_else(|| self.problem(&format!("unexpected line {line:?}")))?;
            let (separator, text) = rest.split_at(1);
            lines.push(text.to_owned());
            match separator {
                " " => return Ok((code, lines)),
                "-" => {}
                _ => {
                    // "+": a data block until a line with a single ".".
                    loop {
                        if lines.len() >= MAX_REPLY_LINES {
                            return Err(self.problem("a data block of too many lines"));
                        }
                        let data = self.read_line().await?;
                        if data == "." {
                            break;
                        }
                        lines.push(data);
                    }
                }
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, TorError> {
        let mut buf = Vec::new();
        let mut limited = (&mut self.reader).take(MAX_LINE as u64 + 2);
        let n = limited
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| TorError::Protocol {
                addr: self.addr,
                problem: e.to_string(),
            })?;
        if n == 0 {
            return Err(self.problem("tor closed the control connection"));
        }
        if buf.last() != Some(&b'\n') {
            return Err(self.problem("a line too long"));
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| self.problem("a line that is not UTF-8"))
    }

    fn problem(&self, problem: &str) -> TorError {
        TorError::Protocol {
            addr: self.addr,
            problem: problem.to_owned(),
        }
    }
}

/// "250-rest" -> (250, "-rest").
fn parse_status(line: &str) -> Option<(u16, &str)> {
    let code = line.get(..3)?.parse().ok()?;
    let rest = line.get(3..)?;
    matches!(rest.get(..1), Some(" " | "-" | "+")).then_some((code, rest))
}

/// COOKIEFILE="..." (a quoted string with backslash escapes).
fn cookie_file(auth_line: &str) -> Option<PathBuf> {
    let start = auth_line.find("COOKIEFILE=\"")? + "COOKIEFILE=\"".len();
    let mut path = String::new();
    let mut chars = auth_line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(PathBuf::from(path)),
            '\\' => path.push(chars.next()?),
            c => path.push(c),
        }
    }
    None
}

fn read_cookie(path: &Path) -> Result<Vec<u8>, TorError> {
    // 32 bytes from a local file: no need for an async read.
    let cookie = std::fs::read(path).map_err(|source| TorError::Cookie {
        path: path.to_owned(),
        source,
    })?;
    if cookie.len() != 32 {
        return Err(TorError::Cookie {
            path: path.to_owned(),
            source: std::io::Error::other(format!("{} bytes, not 32", cookie.len())),
        });
    }
    Ok(cookie)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The HMAC keys of SAFECOOKIE (control-spec 3.24).
const SAFECOOKIE_SERVER_KEY: &[u8] = b"Tor safe cookie authentication server-to-controller hash";
const SAFECOOKIE_CLIENT_KEY: &[u8] = b"Tor safe cookie authentication controller-to-server hash";

/// A tor that vchat started for itself, with its own data folder; it is
/// stopped when this is dropped, and stops by itself if vchat dies
/// (`__OwningControllerProcess`, `TAKEOWNERSHIP`).
pub struct OwnTor {
    child: std::process::Child,
    /// Its control port, authenticated.
    pub control: TorControl,
    /// Its SOCKS port, for calls.
    pub socks: SocketAddr,
}

impl Drop for OwnTor {
    /// Stops tor the way its owner should: closing the owning control
    /// connection makes it exit by itself, saving its state file (its
    /// guards above all: a tor killed every time may not keep them, and
    /// fresh guards on every run widen who can watch you). Killed only if
    /// it has not gone within [`TOR_STOP_LIMIT`].
    fn drop(&mut self) {
        let _ =
            socket2::SockRef::from(self.control.writer.as_ref()).shutdown(std::net::Shutdown::Both);
        let deadline = std::time::Instant::now() + TOR_STOP_LIMIT;
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long tor may take to exit once its owner has let go of it.
const TOR_STOP_LIMIT: Duration = Duration::from_secs(3);

/// How long tor may take to open its control port.
const TOR_START_LIMIT: Duration = Duration::from_secs(30);
/// How long tor may take to connect to the Tor network.
const TOR_BOOTSTRAP_LIMIT: Duration = Duration::from_secs(180);

/// Starts `tor` from PATH with its data in `data_dir` (kept between runs,
/// mode 0700), SOCKS and control ports on 127.0.0.1 chosen by tor, cookie
/// authentication, and `extra_torrc` included (bridges, or a private test
/// network). Returns once tor has bootstrapped, calling `progress` with
/// each new percentage and tor's words for it.
pub async fn start_tor(
    data_dir: &Path,
    extra_torrc: Option<&Path>,
    mut progress: impl FnMut(u8, &str),
) -> Result<OwnTor, TorError> {
    use std::os::unix::fs::DirBuilderExt;
    let failed = |what: &str, e: std::io::Error| TorError::Start {
        problem: format!("{what}: {e}"),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| failed(&format!("cannot create {}", data_dir.display()), e))?;
    let port_file = data_dir.join("control_port");
    let _ = std::fs::remove_file(&port_file);
    let quoted = |p: &Path| format!("\"{}\"", p.display().to_string().replace('"', "\\\""));
    let mut torrc = format!(
        "DataDirectory {}\nSocksPort 127.0.0.1:auto\nControlPort 127.0.0.1:auto\n\
         ControlPortWriteToFile {}\nCookieAuthentication 1\nCookieAuthFile {}\n\
         __OwningControllerProcess {}\n",
        quoted(data_dir),
        quoted(&port_file),
        quoted(&data_dir.join("control_auth_cookie")),
        std::process::id(),
    );
    // `Log` takes its path unquoted, to the end of the line.
    let log_path = data_dir.join("tor.log").display().to_string();
    if !log_path.contains(['\n', '\r']) {
        torrc.push_str(&format!("Log notice file {log_path}\n"));
    }
    if let Some(extra) = extra_torrc {
        torrc.push_str(&format!("%include {}\n", quoted(extra)));
    }
    let torrc_path = data_dir.join("torrc");
    std::fs::write(&torrc_path, torrc).map_err(|e| failed("cannot write its torrc", e))?;
    let mut child = std::process::Command::new("tor")
        .arg("-f")
        .arg(&torrc_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TorError::NotInstalled,
            _ => failed("cannot run tor", e),
        })?;
    let log = data_dir.join("tor.log");
    // From here on, an error must not leave tor running.
    let started = async {
        let deadline = tokio::time::Instant::now() + TOR_START_LIMIT;
        let control_addr = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TorError::Exited {
                    status: status.to_string(),
                    log: log.clone(),
                });
            }
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("PORT="))
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            {
                break addr;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(TorError::Start {
                    problem: format!(
                        "it opened no control port within {TOR_START_LIMIT:?} (see {})",
                        log.display()
                    ),
                });
            }
            // Polled: tor writes the file once, at a time of its choosing.
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut control = TorControl::connect(control_addr).await?;
        control.command("TAKEOWNERSHIP").await?;
        let socks = control
            .command("GETINFO net/listeners/socks")
            .await?
            .iter()
            .find_map(|l| l.strip_prefix("net/listeners/socks="))
            .and_then(|v| {
                v.trim_matches('"')
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            })
            .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())
            .ok_or_else(|| control.problem("tor reports no SOCKS port"))?;
        let bootstrap = async {
            let mut last = None;
            loop {
                let phase = control.command("GETINFO status/bootstrap-phase").await?;
                let line = phase.join(" ");
                let percent = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("PROGRESS="))
                    .and_then(|p| p.parse::<u8>().ok())
                    .unwrap_or(0);
                let summary = line
                    .split("SUMMARY=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("");
                if last != Some(percent) {
                    progress(percent, summary);
                    last = Some(percent);
                }
                if percent >= 100 {
                    return Ok::<_, TorError>(());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::time::timeout(TOR_BOOTSTRAP_LIMIT, bootstrap)
            .await
            .map_err(|_| TorError::NotBootstrapped {
                limit: TOR_BOOTSTRAP_LIMIT,
                log: log.clone(),
            })??;
        Ok((control, socks))
    };
    match started.await {
        Ok((control, socks)) => Ok(OwnTor {
            child,
            control,
            socks,
        }),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_and_the_cookie_path_parse() {
        assert_eq!(parse_status("250-AUTH x"), Some((250, "-AUTH x")));
        assert_eq!(parse_status("250 OK"), Some((250, " OK")));
        assert_eq!(parse_status("650+HS_DESC"), Some((650, "+HS_DESC")));
        assert_eq!(parse_status("25"), None);
        assert_eq!(parse_status("abc OK"), None);
        assert_eq!(
            cookie_file(r#"AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/run/tor/control.a\"b""#),
            Some(PathBuf::from("/var/run/tor/control.a\"b"))
        );
        assert_eq!(cookie_file("AUTH METHODS=NULL"), None);
        assert_eq!(hex(&[0, 0xab]), "00AB");
        assert_eq!(unhex("00aB"), Some(vec![0, 0xab]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
