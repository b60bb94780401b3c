//! The `vchat` command line: argument parsing and logging setup, then the library.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vchat", version, about = "Private peer-to-peer video chat over pinned mutual TLS 1.3")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
