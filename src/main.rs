//! The `vchat` command line: argument parsing and logging setup, then the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Show your identity: name, fingerprints, certificate path, validity.
    Id,
    /// Pin a peer's certificate under a name, after comparing fingerprints.
    Trust {
        /// The peer's cert.pem.
        #[arg(help = format!(
            "The peer's cert.pem. The name inside it (chosen at their `vchat keygen`) \
             is the display name their calls show you, so the display-name rule \
             applies to it: {}",
            identity::display_name_rule()
        ))]
        cert: PathBuf,
        /// The name you will call them by (`--peer NAME`). It names the file
        /// peers/NAME.pem, so it is ASCII letters, digits, '.', '_' or '-',
        /// not starting with '.' or '-'; the display-name rule does not apply.
        #[arg(long)]
        name: String,
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
    /// Wait for a call from a pinned peer.
    Listen {
        /// Address and port to listen on.
        #[arg(long, default_value = "0.0.0.0:7878", value_name = "ADDR:PORT")]
        bind: String,
        /// Who may call: a trusted peer's name or a certificate file (repeatable).
        #[arg(long = "peer", required = true, value_name = "NAME_OR_CERT")]
        peers: Vec<String>,
        /// Take one call, then exit (default: wait for the next call after
        /// each one, until Ctrl-C).
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        options: CallOptions,
    },
    /// Call a pinned peer who is listening.
    Call {
        /// The listener's address, e.g. 192.0.2.7:7878.
        #[arg(value_name = "ADDR:PORT")]
        addr: String,
        /// Whom you expect: a trusted peer's name or a certificate file.
        #[arg(long, value_name = "NAME_OR_CERT")]
        peer: String,
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
        Command::Trust { cert, name, force } => {
            commands::trust(&dir()?, Path::new(&cert), &name, force, out)?
        }
        Command::Peers => commands::list_peers(&dir()?, out)?,
        Command::Untrust { name } => commands::untrust(&dir()?, &name, out)?,
        Command::Cameras => vchat::media::print_cameras(out)?,
        Command::Listen {
            bind,
            peers,
            once,
            options,
        } => {
            let serve = if once {
                Serve::Once
            } else {
                Serve::UntilStopped
            };
            let stats = options.stats;
            let each = move |summary: &CallSummary| call::print_summary(summary, stats);
            report(
                call::listen(&dir()?, &bind, &peers, &options, serve, each),
                &options,
            )?
        }
        Command::Call {
            addr,
            peer,
            options,
        } => report(call::call(&dir()?, &addr, &peer, &options), &options)?,
        Command::Demo { options } => report(call::demo(&options), &options)?,
        Command::Bench(args) => vchat::bench::main(&args, out)?,
    }
    Ok(())
}

/// The summary of a call that ended normally, and with `--stats json` the
/// `end` event whether it did or not.
fn report(
    result: Result<CallSummary, call::CallError>,
    options: &CallOptions,
) -> Result<(), call::CallError> {
    if let Ok(summary) = &result {
        call::print_summary(summary, options.stats);
    }
    call::print_end_event(options.stats, result.as_ref());
    result.map(drop)
}

/// Logs go to stderr; `RUST_LOG` (e.g. `RUST_LOG=debug`) adjusts the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
