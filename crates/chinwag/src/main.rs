//! `chinwag`: one binary for the chat server and its tools.
//!
//! Subcommands: `serve` runs the server. `bench` measures an IRC server under
//! load. (`chat`, `discover` and `admin` follow.)
//! This file only parses flags and wires crates together; behaviour lives in the libraries.

mod bench;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "chinwag", version, about = "A secure, fast, self-hosted chat server speaking IRC")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the chat server (no config file needed: sensible defaults for everything).
    Serve(serve::ServeArgs),
    /// Measure an IRC server on this machine (chinwag or any other) under load.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
