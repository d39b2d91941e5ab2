//! `chinwag`: one binary for the chat server and its tools.
//!
//! Subcommands: `serve` runs the server, `chat` is the terminal client. (`discover`, `admin`
//! and `bench` follow.)
//! This file only parses flags and wires crates together; behaviour lives in the libraries.

mod chat;
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
    /// Chat: the full-screen client, or scriptable mode when stdin is not a terminal.
    Chat(chat::ChatArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Chat(args) => chat::run(args),
    }
}
