//! `chinwag`: one binary for the chat server and its tools.
//!
//! Subcommands: `serve` runs the server; `chat` is the terminal client; `admin` administers a
//! running server; `discover` lists servers on the LAN and `status` asks one server (UDP);
//! `bench` measures an IRC server under load.
//! This file only parses flags and wires crates together; behaviour lives in the libraries.

mod admin;
mod bench;
mod chat;
mod discover;
mod serve;
mod transports;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the server allocates a message's parts on a connection's
/// task and frees them on the hub's, across threads, which glibc serves through locked arenas;
/// profiles of 500 private conversations put a third of the server's CPU in malloc and free.
/// Built without transparent huge pages (`no_thp`): with them, each thread's first touch of an
/// arena filled 2 MiB at a time, which cost 12 MiB at start-up and 0.7 KiB of resident memory
/// per idle connection (2.67 → 1.98 KiB at 10,000), for no throughput we could measure.
#[global_allocator]
static ALLOCATOR: chinwag_alloc::Allocator = chinwag_alloc::Allocator;

#[derive(Parser, Debug)]
#[command(name = "chinwag", version, about = "A secure, fast, self-hosted chat server speaking IRC")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the chat server (no config file needed: sensible defaults for everything).
    Serve(Box<serve::ServeArgs>),
    /// Administer a running server through its control socket (users, stats, kill, ban,
    /// reload, shutdown, …).
    Admin(admin::AdminArgs),
    /// List the chat servers on the LAN, with their rooms (multicast; no login).
    Discover(discover::DiscoverArgs),
    /// Ask one server for its name, addresses, fingerprint and public rooms (UDP; no login).
    Status(discover::StatusArgs),
    /// Measure an IRC server on this machine (chinwag or any other) under load.
    Bench(bench::BenchArgs),
    /// Chat: the full-screen client, or scriptable mode when stdin is not a terminal.
    Chat(chat::ChatArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Admin(args) => admin::run(args),
        Command::Discover(args) => discover::run_discover(args),
        Command::Status(args) => discover::run_status(args),
        Command::Bench(args) => bench::run(args),
        Command::Chat(args) => chat::run(args),
    }
}
