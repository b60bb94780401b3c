//! The `vchat` command line: argument parsing and logging setup, then the library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use vchat::call::{self, CallOptions, CallSummary, Serve};
use vchat::identity::{self, commands};

#[derive(Parser)]
#[command(
    name = "vchat",
    version,
    about = "Private peer-to-peer video chat over pinned mutual TLS 1.3",
    after_help = "Start with `vchat keygen`, swap cert.pem files with your peer, `vchat trust` theirs."
)]
struct Cli {
    /// Identity directory (default: the platform config dir, e.g. ~/.config/vchat).
    #[arg(long, global = true, env = "VCHAT_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create your identity: DIR/cert.pem (share it) and DIR/key.pem (keep it).
    Keygen {
        /// Your display name, carried in the certificate and shown to peers.
        #[arg(
            long,
            default_value = "vchat user",
            value_parser = identity::parse_display_name,
            help = format!(
                "Your display name, carried in the certificate and shown to peers \
                 when you call: {}",
                identity::display_name_rule()
            )
        )]
        name: String,
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
    /// Show your identity: name, fingerprints, certificate path, validity
    /// (needs only cert.pem).
    Id,
    /// Pin a peer's certificate under a name, after comparing fingerprints.
    Trust {
        /// The peer's cert.pem.
        #[arg(help = format!(
            "The peer's cert.pem, or - to read it from standard input. The name \
             inside it (chosen at their `vchat keygen`) is the display name their \
             calls show you, so the display-name rule applies to it: {}",
            identity::display_name_rule()
        ))]
        cert: PathBuf,
        /// The name you will call them by (`--peer NAME`); by default the
        /// certificate's own name, when that is a valid peer name. It names
        /// the file peers/NAME.pem, so the display-name rule does not apply.
        #[arg(long, help = format!(
            "The name you will call them by (`--peer NAME`); by default the \
             certificate's own name, when that is a valid peer name. It names the \
             file peers/NAME.pem, so the display-name rule does not apply; a peer \
             name is {}",
            identity::peers::peer_name_rule()
        ))]
        name: Option<String>,
        /// Where to reach them, HOST[:PORT] or ID.onion[:PORT], kept with
        /// the certificate so that `vchat call NAME` dials it. With --force
        /// and no --address, a stored address is kept.
        #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_address)]
        address: Option<String>,
        /// Replace a peer of that name, or trust the same certificate twice.
        #[arg(long)]
        force: bool,
    },
    /// List trusted peers with their fingerprints.
    Peers,
    /// Stop trusting a peer.
    Untrust {
        /// The peer's name as shown by `vchat peers`.
        name: String,
    },
    /// List cameras and the formats (encoding, size, frame rate) each offers.
    Cameras,
    /// List cameras, microphones and speakers, numbered as --source
    /// camera:N, --mic N and --speaker N take them.
    Devices,
    /// Wait for a call from a pinned peer.
    Listen {
        /// Address and port to listen on. The default, [::]:7878, takes IPv6
        /// and IPv4 callers on one socket (0.0.0.0:7878 where IPv6 is off).
        #[arg(long, default_value = "[::]:7878", value_name = "ADDR:PORT")]
        bind: String,
        /// Who may call: a trusted peer's name or a certificate file (repeatable).
        #[arg(long = "peer", required = true, value_name = "NAME_OR_CERT")]
        peers: Vec<String>,
        /// Take one call, then exit (default: wait for the next call after
        /// each one, until Ctrl-C).
        #[arg(long)]
        once: bool,
        /// Also publish the listener as a Tor onion service, reachable as
        /// ID.onion:7878 from anywhere, behind any NAT, without either side
        /// learning the other's IP address. The service's key is kept in the
        /// identity folder (onion_key, mode 0600), so the address stays the
        /// same; `vchat id` prints it. vchat starts `tor` from PATH for it
        /// (its data in the identity folder's tor/), unless --tor-control
        /// names a running one.
        #[arg(long)]
        onion: bool,
        /// With --onion: a running tor's control port instead of starting
        /// one (torrc: `ControlPort 9051`, `CookieAuthentication 1`).
        #[arg(
            long,
            value_name = "HOST:PORT",
            requires = "onion",
            conflicts_with = "torrc"
        )]
        tor_control: Option<SocketAddr>,
        /// With --onion: torrc lines for the tor vchat starts (bridges, a
        /// test network), included after vchat's own.
        #[arg(long, value_name = "FILE", requires = "onion")]
        torrc: Option<PathBuf>,
        #[command(flatten)]
        options: CallOptions,
    },
    /// Call a pinned peer who is listening.
    Call {
        /// The listener's address: HOST, HOST:PORT, [IPV6]:PORT or an IPv6
        /// address, e.g. alice.example.org or 192.0.2.7:7878. The port
        /// defaults to 7878, the one `vchat listen` uses. Every address the
        /// name resolves to is tried, IPv6 and IPv4 (Happy Eyeballs).
        /// ID.onion[:PORT] goes through Tor: a tor vchat starts for the
        /// call, or --proxy's. Or the name of a trusted peer whose address
        /// `vchat trust --address` stored: `vchat call bob`.
        #[arg(value_name = "HOST[:PORT]|PEER")]
        addr: String,
        /// Whom you expect: a trusted peer's name or a certificate file
        /// (not needed when calling a trusted peer by name).
        #[arg(long, value_name = "NAME_OR_CERT")]
        peer: Option<String>,
        /// Connect through this SOCKS5 proxy, e.g. socks5://127.0.0.1:9050 (a
        /// running tor's SocksPort). The host name goes to the proxy
        /// unresolved: no DNS query leaves this machine.
        #[arg(long, value_name = "socks5://HOST:PORT", value_parser = parse_proxy)]
        proxy: Option<SocketAddr>,
        /// For an ID.onion address without --proxy: torrc lines for the tor
        /// vchat starts (bridges, a test network), included after its own.
        #[arg(long, value_name = "FILE", conflicts_with = "proxy")]
        torrc: Option<PathBuf>,
        #[command(flatten)]
        options: CallOptions,
    },
    /// Try vchat alone: two throwaway identities call each other over loopback.
    Demo {
        #[command(flatten)]
        options: CallOptions,
    },
    /// Measure vchat on this machine: fps, MB/s, latency, CPU, memory, and
    /// the bare TLS stream for comparison (two peers over loopback, no window).
    Bench(vchat::bench::BenchArgs),
    /// Print a shell completion script, e.g. `vchat completions bash >
    /// ~/.local/share/bash-completion/completions/vchat`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `vchat manpage > ~/.local/share/man/man1/vchat.1`.
    Manpage,
}

/// `socks5://HOST:PORT` (or `socks5h://`, the same here: names always go
/// to the proxy) to the proxy's address. The proxy's own host name, if it
/// is one, is looked up here: it is where the proxy is, not whom we call.
fn parse_proxy(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("socks5://")
        .or_else(|| url.strip_prefix("socks5h://"))
        .ok_or_else(|| format!("{url:?} is not a SOCKS5 proxy URL; give socks5://HOST:PORT, e.g. socks5://127.0.0.1:9050"))?;
    let rest = rest.trim_end_matches('/');
    use std::net::ToSocketAddrs;
    rest.to_socket_addrs()
        .map_err(|e| format!("cannot use proxy {url:?}: {e}; give socks5://HOST:PORT, e.g. socks5://127.0.0.1:9050"))?
        .next()
        .ok_or_else(|| format!("proxy {url:?} names no address"))
}

/// A peer's address as `vchat call` takes it (checked now, not at the call).
fn parse_address(address: &str) -> Result<String, String> {
    vchat::net::parse_target(address)
        .map(|_| address.to_owned())
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our error messages already carry their cause; the chain would repeat it.
            eprintln!("vchat: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = || identity::resolve_dir(cli.dir.as_deref());
    // Not locked: the call prints stats from other threads while this runs.
    let out = &mut std::io::stdout();
    match cli.command {
        Command::Keygen { name, force } => commands::keygen(&dir()?, &name, force, out)?,
        Command::Id => commands::id(&dir()?, out)?,
        Command::Trust {
            cert,
            name,
            address,
            force,
        } => {
            let stdin = &mut std::io::stdin().lock();
            let (name, address) = (name.as_deref(), address.as_deref());
            commands::trust(&dir()?, &cert, name, address, force, stdin, out)?
        }
        Command::Peers => commands::list_peers(&dir()?, out)?,
        Command::Untrust { name } => commands::untrust(&dir()?, &name, out)?,
        Command::Cameras => vchat::media::print_cameras(out)?,
        Command::Devices => {
            vchat::media::print_cameras(out)?;
            vchat::media::audio::print_audio_devices(out)?;
        }
        Command::Listen {
            bind,
            peers,
            once,
            onion,
            tor_control,
            torrc,
            options,
        } => {
            let access = match tor_control {
                Some(control) => call::TorAccess::Running(control),
                None => call::TorAccess::Start { torrc },
            };
            let onion = onion.then_some(access);
            let serve = if once {
                Serve::Once
            } else {
                Serve::UntilStopped
            };
            let stats = options.stats;
            let each = move |summary: &CallSummary| call::print_summary(summary, stats);
            let waiting_for = peers.join(" or ");
            report(
                &waiting_for,
                || call::listen(&dir()?, &bind, onion, &peers, &options, serve, each),
                &options,
            )?
        }
        Command::Call {
            addr,
            peer,
            proxy,
            torrc,
            options,
        } => {
            let route = match proxy {
                Some(proxy) => call::CallRoute::Proxy(proxy),
                None => call::CallRoute::Direct { torrc },
            };
            let (addr, peer) = identity::peers::callee(&dir()?, &addr, peer.as_deref())?;
            report(
                &peer,
                || call::call(&dir()?, &addr, route, &peer, &options),
                &options,
            )?
        }
        Command::Demo { options } => report("friend", || call::demo(&options), &options)?,
        Command::Bench(args) => vchat::bench::main(&args, out)?,
        // Both are generated from the clap definitions above, so they list
        // exactly the subcommands and options this binary has.
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "vchat", out)
        }
        Command::Manpage => clap_mangen::Man::new(Cli::command()).render(out)?,
    }
    Ok(())
}

/// Runs a call with `peer` and prints its summary, whether it ended
/// normally or failed, and with `--stats json` the `end` event.
fn report(
    peer: &str,
    call: impl FnOnce() -> Result<CallSummary, call::CallError>,
    options: &CallOptions,
) -> Result<(), call::CallError> {
    let started = std::time::Instant::now();
    let result = call();
    match &result {
        Ok(summary) => call::print_summary(summary, options.stats),
        Err(e) => call::print_failure(peer, e, started.elapsed(), options.stats),
    }
    call::print_end_event(options.stats, result.as_ref());
    result.map(drop)
}

/// What is logged without `RUST_LOG`: vchat's own lines at info, every
/// other crate (winit, X11, rustls, ...) only when it warns.
const DEFAULT_LOG_FILTER: &str = "vchat=info,warn";

/// The PulseAudio client library logs "ERROR Reactor error: Client
/// disconnected" whenever one of its connections closes, which vchat does
/// after listing devices and at every hang-up: not an error, so silenced
/// unless `RUST_LOG` asks for that library by name. A sound server that
/// really goes away mid-call is reported by vchat itself ("speaker: ...",
/// "voice stopped: ...").
const PULSEAUDIO_REACTOR_OFF: &str = "pulseaudio::client::reactor=off";

/// Logs go to stderr; `RUST_LOG` (e.g. `RUST_LOG=debug`) replaces the
/// default filter.
fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let asked_for_pulseaudio = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("pulseaudio"));
    if !asked_for_pulseaudio {
        if let Ok(directive) = PULSEAUDIO_REACTOR_OFF.parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
