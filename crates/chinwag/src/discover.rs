//! `chinwag discover` (servers on the LAN, by multicast), `chinwag status HOST` (one server, by
//! unicast), and the `--discovery*` flags of `chinwag serve`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chinwag_client::neutralise;
use chinwag_discovery::{DiscoverOptions, Found, DEFAULT_PORT};
use chinwag_server::FlagValue;
use clap::Args;

/// Longest wait a user may ask for.
const MAX_TIMEOUT_SECS: f64 = 60.0;

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// Seconds to wait for answers.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    timeout: f64,
    /// Print JSON (an array of servers) instead of text.
    #[arg(long)]
    json: bool,
    /// UDP port servers answer on.
    #[arg(long, default_value_t = DEFAULT_PORT, value_name = "PORT")]
    port: u16,
    /// Multicast group to probe; repeatable [default: 239.255.12.48 and ff02::6368:6174].
    #[arg(long = "group", value_name = "ADDR")]
    groups: Vec<IpAddr>,
    /// Probe only on this interface; repeatable [default: all].
    #[arg(long = "interface", value_name = "NAME")]
    interfaces: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The server: a name or address, with an optional :PORT (default 12348; IPv6 as [ADDR]:PORT).
    host: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    timeout: f64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The `chinwag serve` flags for discovery: each sets a key of the `[discovery]` section.
#[derive(Args, Debug)]
pub struct ServeDiscoveryArgs {
    /// Answer LAN discovery probes and status queries (UDP) with the server's name, addresses,
    /// fingerprint and public rooms (never secret ones) [key: discovery.enabled; default: on].
    #[arg(long, value_enum, value_name = "on|off")]
    discovery: Option<Switch>,
    /// UDP port for discovery and status queries [key: discovery.port; default: 12348].
    #[arg(long, value_name = "PORT")]
    discovery_port: Option<u16>,
    /// Multicast group to join; repeatable, and giving any replaces the defaults (add
    /// 224.1.1.1 for older setups) [key: discovery.groups; default: 239.255.12.48 and
    /// ff02::6368:6174].
    #[arg(long = "discovery-group", value_name = "ADDR")]
    discovery_groups: Vec<IpAddr>,
    /// Answer only on this interface; repeatable [key: discovery.interfaces; default: every
    /// non-loopback interface]. Loopback is always answered.
    #[arg(long = "discovery-interface", value_name = "NAME")]
    discovery_interfaces: Vec<String>,
    /// Also answer status queries from beyond the LAN (across routers or a VPN); by default
    /// only the allowed interfaces' networks and loopback are answered [key:
    /// discovery.answer_remote].
    #[arg(long)]
    discovery_remote: bool,
    /// Also announce the server to the groups every this many seconds [key:
    /// discovery.announce_seconds; default: never].
    #[arg(long, value_name = "SECONDS")]
    discovery_announce: Option<u64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

impl ServeDiscoveryArgs {
    /// Adds these flags to the configuration sources, as (key, value, origin).
    pub fn push_flags(&self, flags: &mut Vec<(String, FlagValue, String)>) {
        let mut push = |key: &str, value: FlagValue, flag: &str| {
            flags.push((key.to_owned(), value, format!("flag {flag}")));
        };
        if let Some(switch) = self.discovery {
            push("discovery.enabled", FlagValue::Text((switch == Switch::On).to_string()), "--discovery");
        }
        if let Some(port) = self.discovery_port {
            push("discovery.port", FlagValue::Text(port.to_string()), "--discovery-port");
        }
        if !self.discovery_groups.is_empty() {
            let groups = self.discovery_groups.iter().map(ToString::to_string).collect();
            push("discovery.groups", FlagValue::List(groups), "--discovery-group");
        }
        if !self.discovery_interfaces.is_empty() {
            push("discovery.interfaces", FlagValue::List(self.discovery_interfaces.clone()), "--discovery-interface");
        }
        if self.discovery_remote {
            push("discovery.answer_remote", FlagValue::Text("true".into()), "--discovery-remote");
        }
        if let Some(seconds) = self.discovery_announce {
            push("discovery.announce_seconds", FlagValue::Text(seconds.to_string()), "--discovery-announce");
        }
    }
}

fn timeout(secs: f64) -> Result<Duration> {
    if !(secs > 0.0 && secs <= MAX_TIMEOUT_SECS) {
        bail!("--timeout must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

pub fn run_discover(args: DiscoverArgs) -> Result<()> {
    let mut opts = DiscoverOptions { timeout: timeout(args.timeout)?, port: args.port, ..DiscoverOptions::default() };
    if !args.groups.is_empty() {
        opts.groups = args.groups;
    }
    opts.interfaces = args.interfaces;
    let found = runtime()?.block_on(chinwag_discovery::discover_with(&opts)).context("probing the LAN")?;
    let found: Vec<Found> = found.iter().map(shown).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else if found.is_empty() {
        println!(
            "No chinwag server answered within {:?}. Servers answer when started with discovery on \
             (the default) and when UDP port {} reaches them; try `chinwag status HOST`.",
            opts.timeout, opts.port
        );
    } else {
        for server in &found {
            print!("{}", describe(server));
        }
    }
    Ok(())
}

pub fn run_status(args: StatusArgs) -> Result<()> {
    let wait = timeout(args.timeout)?;
    let found = shown(&runtime()?.block_on(chinwag_discovery::status(&args.host, wait))?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{}", describe(&found));
    }
    Ok(())
}

/// An answer as it may be printed: what the server wrote about itself (its name, version, room
/// names and topics) with anything a terminal would obey, or that reorders the line, made
/// visible by [`neutralise`]. The wire format already refuses control characters, but not bidi
/// overrides, and this is printed in both text and JSON (whose readers print its strings to a
/// terminal too, as `chinwag chat --json`'s do).
fn shown(found: &Found) -> Found {
    let text = |s: &str| neutralise(s).into_owned();
    let mut found = found.clone();
    found.name = text(&found.name);
    found.version = text(&found.version);
    found.fingerprint = found.fingerprint.as_deref().map(text);
    for room in &mut found.rooms {
        room.name = text(&room.name);
        room.topic = text(&room.topic);
    }
    found
}

/// A server as text: a header line, how to connect, the fingerprint, the rooms.
fn describe(s: &Found) -> String {
    let s = &shown(s);
    let mut out = String::new();
    let users = if s.users_online == 1 { "user" } else { "users" };
    let _ = writeln!(out, "{} ({}), {} {users} online, answered from {}", s.name, s.version, s.users_online, s.from);
    for l in &s.listeners {
        let _ = writeln!(out, "  {:<13} {}", l.transport.label(), l.addr);
    }
    if let Some(fp) = &s.fingerprint {
        let _ = writeln!(out, "  fingerprint   SHA-256 {fp}");
    }
    let width = s.rooms.iter().map(|r| r.name.chars().count()).max().unwrap_or(0);
    let _ = writeln!(out, "  rooms ({}):", s.rooms_total);
    for r in &s.rooms {
        let mut flags = String::new();
        if r.invite_only {
            flags.push_str(" [invite only]");
        }
        if r.key_required {
            flags.push_str(" [key]");
        }
        let topic = if r.topic.is_empty() { String::new() } else { format!("  {}", r.topic) };
        let _ = writeln!(out, "    {:<width$} {:>5}{flags}{topic}", r.name, r.members);
    }
    let more = usize::from(s.rooms_total).saturating_sub(s.rooms.len());
    if more > 0 {
        let _ = writeln!(out, "    … and {more} more: chinwag status {}", s.from);
    }
    out
}

#[cfg(test)]
mod tests {
    use chinwag_discovery::wire::{Listener, Room, Transport};
    use chinwag_discovery::Found;

    use super::{describe, shown};

    /// What a hostile server on the LAN might announce: ESC and OSC (the wire refuses them,
    /// but `describe` must not rely on it), C1, and a right-to-left override (the wire lets it
    /// through).
    fn hostile() -> Found {
        Found {
            from: "127.0.0.1:12348".parse().expect("an address"),
            instance: 1,
            name: "evil\u{202e}revres".into(),
            version: "1.0\u{1b}[2J".into(),
            fingerprint: Some("AA:BB".into()),
            users_online: 2,
            listeners: vec![Listener {
                transport: Transport::Tls,
                addr: "127.0.0.1:6697".parse().expect("an address"),
            }],
            rooms_total: 1,
            rooms: vec![Room {
                name: "#lobby\u{2066}".into(),
                topic: "\u{1b}]0;pwned\u{7} and \u{9b}31m".into(),
                members: 2,
                invite_only: false,
                key_required: false,
            }],
        }
    }

    #[test]
    fn what_a_server_says_about_itself_is_shown_not_obeyed() {
        let text = describe(&hostile());
        let forbidden = |c: char| chinwag_client::neutral::needs_neutralising(c) && c != '\n';
        assert!(!text.chars().any(forbidden), "{text:?}");
        for shown in
            ["evil[U+202E]revres", "1.0\u{241b}[2J", "#lobby[U+2066]", "\u{241b}]0;pwned\u{2407} and [U+009B]31m"]
        {
            assert!(text.contains(shown), "{shown:?} not in {text}");
        }
        let json = serde_json::to_string(&shown(&hostile())).expect("JSON");
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["name"], "evil[U+202E]revres");
        assert_eq!(value["rooms"][0]["topic"], "\u{241b}]0;pwned\u{2407} and [U+009B]31m");
    }
}
