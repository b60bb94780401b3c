//! Tor's control port, as much of it as publishing a listener as a v3 onion
//! service needs (tor's control-spec.txt): authenticate with the cookie,
//! `ADD_ONION` with the identity's own onion key, and wait until a
//! directory holds the service's descriptor (`650 HS_DESC UPLOADED`).
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
        } else if has("COOKIE") || has("SAFECOOKIE") {
            let path = cookie_file(auth).ok_or_else(|| self.problem("no COOKIEFILE given"))?;
            let cookie = read_cookie(&path)?;
            self.command(&format!("AUTHENTICATE {}", hex(&cookie)))
                .await?;
        } else {
            return Err(TorError::NoUsableAuth(self.addr));
        }
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
    }
}
