//! `chinwag bench`: flags → [`chinwag_bench::Options`], run one scenario on a single-threaded
//! runtime, print the table and the JSON line.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chinwag_bench::{Options, Scenario};
use clap::{Args, ValueEnum};

use crate::transports;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    scenario: ScenarioArg,

    /// The IRC server to drive: HOST:PORT on this machine (loopback only). Repeat it for the
    /// nodes of a cluster (or several servers): members are spread over them round-robin, the
    /// two sides of a pair and a room's senders and watchers on different targets. Not for
    /// `transports`, which starts its own chinwag server.
    #[arg(long, value_name = "HOST:PORT")]
    target: Vec<String>,

    /// transports: run in a new network namespace whose loopback applies these `tc netem`
    /// settings to every packet, e.g. "delay 10ms loss 1%" (needs root and iproute2).
    #[arg(long, value_name = "SETTINGS")]
    netem: Option<String>,

    /// transports: measure the server already at TCP,TLS,QUIC (how the bench runs itself
    /// inside the namespace); prints only the rows as JSON.
    #[arg(long, hide = true, value_name = "TCP,TLS,QUIC")]
    inside: Option<String>,

    /// The server's process id: adds its CPU time (deliveries per CPU-second) and memory.
    /// Repeat it for every node: CPU time and memory are summed over all of them.
    #[arg(long, value_name = "PID")]
    server_pid: Vec<u32>,

    /// Another process to time over the same measured phase, reported on its own under NAME
    /// (e.g. nats=PID, postgres=PID, or each node alone). Repeat it; the processes under one
    /// name are summed, and one gone by the end is left out.
    #[arg(long, value_name = "NAME=PID", value_parser = parse_watch)]
    watch_pid: Vec<(String, u32)>,

    /// Connect with TLS (the certificate is not checked; the target is loopback).
    #[arg(long)]
    tls: bool,

    /// fanout: members of the room; pairs: connections, two per pair.
    #[arg(long, default_value_t = 100)]
    members: usize,

    /// fanout: how many members send; history: how many senders (each in its own room).
    #[arg(long, default_value_t = 10)]
    senders: usize,

    /// Messages per sender.
    #[arg(long, default_value_t = 1000)]
    messages: u64,

    /// Total messages per second over all senders (fixed rate, open loop). Without it the
    /// senders saturate the server, each with --in-flight messages unanswered.
    #[arg(long, value_name = "MSGS_PER_SEC")]
    rate: Option<u64>,

    /// connect, idle: how many connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    connections: usize,

    /// Saturated senders: messages in flight per sender; connect, idle: registrations in
    /// flight.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,

    /// Stop after this many seconds whatever happens (set-up included).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    duration: u64,

    /// idle: seconds to hold the connections before the server's memory is read.
    #[arg(long, default_value_t = 2, value_name = "SECS")]
    hold: u64,

    /// A name for this run in the report (e.g. which server it was).
    #[arg(long, default_value = "")]
    label: String,

    /// Append the result as one JSON line to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,

    /// Write a plot (latency distribution, throughput over time) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ScenarioArg {
    /// Open and register --connections, --in-flight at a time.
    Connect,
    /// Hold --connections registered connections; server memory per connection.
    Idle,
    /// --members in one room, --senders of them send.
    Fanout,
    /// --members / 2 pairs exchanging private messages.
    Pairs,
    /// --senders, each alone in a room with echo-message: how fast messages become durable.
    History,
    /// Latency and throughput of TCP, TLS, QUIC stream, QUIC datagrams and raw UDP, against a
    /// chinwag server the bench starts (with --netem: in a network namespace with loss/delay).
    Transports,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let ScenarioArg::Transports = args.scenario {
        return run_transports(&args);
    }
    if args.target.is_empty() {
        bail!("--target HOST:PORT is required for this scenario");
    }
    let targets = args.target.iter().map(|t| resolve(t)).collect::<Result<Vec<_>>>()?;
    // Each connection is a file here too: thousands of them need the hard limit, not the
    // soft one a shell usually starts with.
    chinwag_server::raise_open_files_limit();
    let scenario = match args.scenario {
        ScenarioArg::Transports => unreachable!("handled above"),
        ScenarioArg::Connect => Scenario::Connect,
        ScenarioArg::Idle => Scenario::Idle,
        ScenarioArg::Fanout => Scenario::Fanout,
        ScenarioArg::Pairs => Scenario::Pairs,
        ScenarioArg::History => Scenario::History,
    };
    let mut opts = Options::new(scenario, targets[0]);
    opts.targets = targets;
    opts.server_pids = args.server_pid;
    opts.watched = args.watch_pid;
    opts.tls = args.tls;
    opts.members = args.members;
    opts.senders = args.senders;
    opts.messages = args.messages;
    opts.rate = args.rate;
    opts.connections = args.connections;
    opts.in_flight = args.in_flight;
    opts.duration = Duration::from_secs(args.duration);
    opts.hold = Duration::from_secs(args.hold);
    opts.label = args.label;
    opts.progress = std::io::stderr().is_terminal();

    // One thread: the generator is meant to be pinned to one CPU, and one thread with many
    // connections per thread is the cheapest way to use it.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let report = runtime.block_on(chinwag_bench::run(&opts))?;
    print!("{report}");
    let line = report.json_line();
    println!("{line}");
    if let Some(path) = &args.json_out {
        append_line(path, &line)?;
    }
    if let Some(path) = &args.plot {
        chinwag_bench::write_svg(&report, path).with_context(|| format!("writing the plot to {}", path.display()))?;
    }
    Ok(())
}

/// `bench transports`: the five transports, against a server of its own.
fn run_transports(args: &BenchArgs) -> Result<()> {
    let plan = transports::Plan {
        messages: args.messages,
        in_flight: args.in_flight,
        duration: Duration::from_secs(args.duration),
        netem: args.netem.clone(),
    };
    if let Some(inside) = &args.inside {
        let targets = transports::Targets::parse(inside)?;
        let rows = transports::runtime()?.block_on(transports::measure(targets, &plan))?;
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    let run = transports::run(&plan)?;
    print!("{}", transports::table(&run));
    let line = transports::json_line(&run, &plan);
    println!("{line}");
    if let Some(path) = &args.json_out {
        append_line(path, &line)?;
    }
    if let Some(path) = &args.plot {
        transports::write_svg(&run, path).with_context(|| format!("writing the plot to {}", path.display()))?;
    }
    Ok(())
}

/// `--watch-pid NAME=PID`.
fn parse_watch(arg: &str) -> Result<(String, u32), String> {
    let (name, pid) = arg.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse().map_err(|_| format!("{pid:?} is not a process id"))?;
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    Ok((name.to_owned(), pid))
}

fn append_line(path: &std::path::Path, line: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {} to append the result", path.display()))?;
    writeln!(file, "{line}").with_context(|| format!("writing to {}", path.display()))
}

/// HOST:PORT → the first address it names; anything not on loopback is refused.
fn resolve(target: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .with_context(|| format!("--target {target:?} is not HOST:PORT (e.g. 127.0.0.1:6667)"))?
        .collect();
    let Some(first) = addrs.first().copied() else { bail!("--target {target:?} names no address") };
    chinwag_bench::check_target(first)?;
    Ok(first)
}
