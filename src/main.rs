//! The `vchat` command line: argument parsing and logging setup, then the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
        /// Your display name, carried in the certificate.
        #[arg(long, default_value = "vchat user")]
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
        cert: PathBuf,
        /// The name you will call them by (letters, digits, '.', '_', '-').
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vchat: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = || identity::resolve_dir(cli.dir.as_deref());
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::Keygen { name, force } => commands::keygen(&dir()?, &name, force, out)?,
        Command::Id => commands::id(&dir()?, out)?,
        Command::Trust { cert, name, force } => {
            commands::trust(&dir()?, Path::new(&cert), &name, force, out)?
        }
        Command::Peers => commands::list_peers(&dir()?, out)?,
        Command::Untrust { name } => commands::untrust(&dir()?, &name, out)?,
        Command::Cameras => vchat::media::print_cameras(out)?,
    }
    Ok(())
}

/// Logs go to stderr; `RUST_LOG` (e.g. `RUST_LOG=debug`) adjusts the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
