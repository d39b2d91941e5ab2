//! `chinwag-bench`: a load generator for IRC servers, behind `chinwag bench`.
//!
//! What it is: a set of bounded scenarios that open many plain IRC connections (NICK/USER, wait
//! for 001, JOIN, PRIVMSG, answer PING) against one server on loopback (or several: members are
//! spread over the targets round-robin, so the nodes of a cluster are measured as one network)
//! and measure what the server does: registrations per second, memory per idle connection, deliveries per second and
//! per server CPU-second, latency percentiles (HDR histogram), lost and reordered messages.
//! Because it speaks only plain IRC it drives any IRC server, which is the point: chinwag is
//! compared with other servers under exactly the same load (see `bench/compare.sh`).
//!
//! What it is not: it does not depend on chinwag's core or server crates, starts no server and
//! refuses any target that is not a loopback address (it is a load generator, not a tool to
//! point at someone else's machine).
//!
//! Layout:
//! - this file: [`Options`], [`Scenario`], [`run`] and the loopback check.
//! - `wire`: one connection (plaintext or TLS), registration, the payload format and the
//!   receive-side line scanner.
//! - `flow`: the message scenarios (`fanout`, `pairs`, `history`): members, senders with a
//!   bounded window or a fixed rate, receivers that count, check order and time.
//! - `hold`: the connection scenarios (`connect`, `idle`).
//! - `procfs`: server CPU time and memory from `/proc/PID`.
//! - `stall`: the machine's own stalls during the measured phase (a thread that sleeps 1 ms
//!   at a time and notes how late it wakes), reported beside every latency.
//! - `report`: the [`Report`], its table and its JSON line; `plot`: the SVG plot.
//!
//! Every scenario is bounded twice: by counts (connections, messages) and by a deadline
//! ([`Options::duration`]); it stops by itself either way and reports what it saw.

mod flow;
mod hold;
mod plot;
mod procfs;
mod progress;
mod report;
mod stall;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

pub use plot::write_svg;
pub use report::{Latency, Report};
pub use stall::Stalls;
pub use wire::AnyCertificate;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Open and register `connections`, `in_flight` at a time.
    Connect,
    /// Hold `connections` registered connections and measure the server's memory.
    Idle,
    /// `members` in one room; `senders` of them send `messages` each.
    Fanout,
    /// `members / 2` pairs; each side sends `messages` private messages to the other.
    Pairs,
    /// `senders` each alone in a room with echo-message: the echo marks a durable message.
    History,
}

impl Scenario {
    /// The name used on the command line and in the JSON line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::Idle => "idle",
            Scenario::Fanout => "fanout",
            Scenario::Pairs => "pairs",
            Scenario::History => "history",
        }
    }
}

/// Everything a run needs. Counts bound the work; `duration` bounds the time.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: Scenario,
    /// Loopback addresses (at least one); anything else is refused. Members are spread over
    /// them round-robin ([`Options::target_of`]): the two sides of a pair, and a room's
    /// senders and the members that acknowledge them, land on different targets when there
    /// are several, so that a cluster's cross-node path is what is measured.
    pub targets: Vec<SocketAddr>,
    /// The servers' process ids (one per node, or one for a single server), for CPU time and
    /// memory, summed over all of them. Empty: those are reported as unavailable.
    pub server_pids: Vec<u32>,
    /// Other processes (name, pid) whose CPU time over the measured phase is reported on its
    /// own, summed per name: a cluster's NATS and PostgreSQL, or each node alone.
    pub watched: Vec<(String, u32)>,
    /// Connect with TLS (the certificate is not checked: the target is loopback).
    pub tls: bool,
    /// Room members (fanout) or connections in pairs (pairs: `members / 2` pairs).
    pub members: usize,
    /// How many members send (fanout, history).
    pub senders: usize,
    /// Messages per sender.
    pub messages: u64,
    /// Total messages per second over all senders; `None` means saturated (a window of
    /// `in_flight` unanswered messages per sender).
    pub rate: Option<u64>,
    /// Connections for `connect` and `idle`.
    pub connections: usize,
    /// Saturated senders: messages in flight per sender. Connection scenarios: registrations
    /// in flight.
    pub in_flight: usize,
    /// Hard deadline for the whole run, set-up included.
    pub duration: Duration,
    /// `idle`: how long the connections are held before memory is read.
    pub hold: Duration,
    /// Free text carried into the report (e.g. which server this was).
    pub label: String,
    /// Show a progress bar (only meaningful on a terminal).
    pub progress: bool,
}

impl Options {
    /// Defaults for a scenario against a target: small enough to run in seconds.
    pub fn new(scenario: Scenario, target: SocketAddr) -> Self {
        Options {
            scenario,
            targets: vec![target],
            server_pids: Vec::new(),
            watched: Vec::new(),
            tls: false,
            members: 100,
            senders: 10,
            messages: 1000,
            rate: None,
            connections: 1000,
            in_flight: 64,
            duration: Duration::from_secs(120),
            hold: Duration::from_secs(2),
            label: String::new(),
            progress: false,
        }
    }
}

impl Options {
    /// The index into [`Options::targets`] of the `i`th member or connection: round-robin.
    pub fn target_of(&self, i: usize) -> usize {
        i % self.targets.len().max(1)
    }
}

/// Why a run could not be done at all. (A run that loses messages is not an error: it is
/// reported.)
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0} is not a loopback address; chinwag bench only drives servers on this machine (127.0.0.0/8 or ::1)")]
    NotLoopback(SocketAddr),
    #[error("invalid options: {0}")]
    Options(String),
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("the server refused or dropped a connection during set-up: {0}")]
    Setup(String),
    #[error("a member could not be set up: {0}")]
    Member(String),
    #[error("set-up did not finish before the deadline ({0} of {1} connections ready)")]
    SetupTimeout(usize, usize),
}

/// Refuses anything but loopback targets.
pub fn check_target(target: SocketAddr) -> Result<(), BenchError> {
    if target.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err(BenchError::NotLoopback(target))
    }
}

/// Runs one scenario to the end (or its deadline) and reports. Must be called inside a Tokio
/// runtime; a current-thread runtime is the cheapest and what `chinwag bench` uses.
pub async fn run(opts: &Options) -> Result<Report, BenchError> {
    for &target in &opts.targets {
        check_target(target)?;
    }
    validate(opts)?;
    match opts.scenario {
        Scenario::Connect => hold::connect(opts).await,
        Scenario::Idle => hold::idle(opts).await,
        Scenario::Fanout | Scenario::Pairs | Scenario::History => flow::run(opts).await,
    }
}

fn validate(opts: &Options) -> Result<(), BenchError> {
    let bad = |what: &str| Err(BenchError::Options(what.to_owned()));
    if opts.targets.is_empty() {
        return bad("at least one --target is needed");
    }
    match opts.scenario {
        Scenario::Fanout if opts.members < 2 => bad("fanout needs --members of at least 2"),
        Scenario::Fanout if opts.senders == 0 || opts.senders > opts.members => {
            bad("fanout needs --senders between 1 and --members")
        }
        Scenario::Pairs if opts.members < 2 => bad("pairs needs --members of at least 2 (two per pair)"),
        Scenario::History if opts.senders == 0 => bad("history needs --senders of at least 1"),
        Scenario::Connect | Scenario::Idle if opts.connections == 0 => bad("--connections must be at least 1"),
        _ if opts.in_flight == 0 => bad("--in-flight must be at least 1"),
        _ if opts.rate == Some(0) => bad("--rate must be at least 1 (leave it out to saturate)"),
        _ => Ok(()),
    }
}
