//! The administration language shared by the control socket (`chinwag admin`) and the server's
//! own console: `users`, `rooms`, `stats`, `broadcast`, `kill`/`kick`, `ban`/`unban`/`bans`,
//! `op`/`deop`/`voice`/`devoice`/`mode`/`topic` on any room, `nodes` (a cluster's live nodes),
//! `reload`, `shutdown`. A command is a list of words; the answer is an [`AdminReply`] with a
//! table for people and the same data as JSON for scripts.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::hub::{self, now};
use crate::metrics::{CoreCounts, Snapshot};
use crate::Control;

/// What every command answers.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct AdminReply {
    pub ok: bool,
    /// For people: a table or a sentence.
    pub text: String,
    /// For scripts (`--json`).
    pub data: Value,
}

impl AdminReply {
    fn done(text: impl Into<String>, data: Value) -> AdminReply {
        AdminReply { ok: true, text: text.into(), data }
    }

    fn error(text: impl Into<String>) -> AdminReply {
        let text = text.into();
        AdminReply { ok: false, data: json!({ "error": text }), text }
    }
}

pub const HELP: &str = "\
commands:
  users                               online users: nick, address, account, transport, idle
  rooms                               rooms with member counts and topics
  stats                               counters, uptime, CPU and memory
  broadcast MESSAGE...                a notice from the server to every user
  kill NICK [REASON...]               disconnect a user (also: kick)
  ban MASK [--minutes N] [REASON...]  refuse and disconnect hosts matching MASK (e.g. 192.0.2.*)
  unban MASK                          lift a ban
  bans                                bans in force
  op ROOM NICK / deop ROOM NICK        give or take a member's operator status in any room
  voice ROOM NICK / devoice ROOM NICK  give or take a member's voice
  mode ROOM MODES [ARGS...]           change a room's modes as the server (e.g. mode #general +m)
  topic ROOM [TEXT...]                set a room's topic as the server; no text clears it
  nodes                               a cluster's live nodes: name, incarnation, node number
  reload                              re-read MOTD, limits, password, operators, TLS certificate
  shutdown [--grace SECONDS] [REASON...]  stop gracefully
  help                                this list";

/// Runs one command. `by` names who asked, for the audit log (e.g. `control socket uid 1000`).
pub async fn execute(control: &Control, args: &[String], by: &str) -> AdminReply {
    let Some(command) = args.first() else { return AdminReply::done(HELP, json!({ "help": HELP })) };
    let rest = &args[1..];
    let result = match command.to_ascii_lowercase().as_str() {
        "help" | "?" => Ok(AdminReply::done(HELP, json!({ "help": HELP }))),
        "users" | "who" => users(control).await,
        "rooms" | "channels" => rooms(control).await,
        "stats" => stats(control)
            .await
            .map(|s| AdminReply::done(render_stats(&s), serde_json::to_value(&s).unwrap_or_default())),
        "broadcast" | "wall" => broadcast(control, rest, by).await,
        "kill" | "kick" => kill(control, rest, by).await,
        "ban" | "kline" => ban(control, rest, by).await,
        "unban" | "unkline" => unban(control, rest, by).await,
        "bans" | "klines" => bans(control).await,
        "op" | "deop" | "voice" | "devoice" => {
            let (modes, usage) = match command.to_ascii_lowercase().as_str() {
                "op" => ("+o", "usage: op ROOM NICK"),
                "deop" => ("-o", "usage: deop ROOM NICK"),
                "voice" => ("+v", "usage: voice ROOM NICK"),
                _ => ("-v", "usage: devoice ROOM NICK"),
            };
            match rest {
                [room, nick] => room_mode(control, room, modes, std::slice::from_ref(nick), by).await,
                _ => Ok(AdminReply::error(usage)),
            }
        }
        "mode" => match rest {
            [room, modes, args @ ..] => room_mode(control, room, modes, args, by).await,
            _ => Ok(AdminReply::error("usage: mode ROOM MODES [ARGS...]")),
        },
        "topic" => match rest {
            [room, words @ ..] => topic(control, room, &words.join(" "), by).await,
            _ => Ok(AdminReply::error("usage: topic ROOM [TEXT...]")),
        },
        "reload" | "rehash" => match control.reloader.reload(by).await {
            Ok(summary) => Ok(AdminReply::done(summary.clone(), json!({ "reloaded": true, "summary": summary }))),
            Err(e) => Ok(AdminReply::error(format!("reload failed, nothing changed: {e:#}"))),
        },
        "shutdown" | "stop" => shutdown(control, rest, by),
        "nodes" => Ok(nodes(control)),
        other => Ok(AdminReply::error(format!("unknown command {other:?}\n{HELP}"))),
    };
    result.unwrap_or_else(|hub::Stopped| AdminReply::error("the server is stopping"))
}

async fn users(control: &Control) -> Result<AdminReply, hub::Stopped> {
    let users = hub::call(&control.hub, |h| h.server.users(now())).await?;
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.nick.clone(),
                u.ip.to_string(),
                u.account.clone().unwrap_or_else(|| "-".into()),
                u.transport.into(),
                human_duration(u.idle_secs),
                u.channels.to_string(),
                match (&u.oper, u.registered) {
                    (Some(o), _) => format!("oper:{o}"),
                    (None, false) => "registering".into(),
                    (None, true) => String::new(),
                },
            ]
        })
        .collect();
    let data: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "nick": u.nick, "user": u.user, "host": u.host, "address": u.ip.to_string(),
                "account": u.account, "transport": u.transport,
                "idle_seconds": u.idle_secs, "signon_ms": u.signon_ms, "rooms": u.channels,
                "registered": u.registered, "oper": u.oper,
            })
        })
        .collect();
    let text = table(&["NICK", "ADDRESS", "ACCOUNT", "TRANSPORT", "IDLE", "ROOMS", "FLAGS"], &rows);
    Ok(AdminReply::done(format!("{text}{} connection(s)", users.len()), Value::Array(data)))
}

async fn rooms(control: &Control) -> Result<AdminReply, hub::Stopped> {
    let rooms = hub::call(&control.hub, |h| h.server.rooms()).await?;
    let rows: Vec<Vec<String>> = rooms
        .iter()
        .map(|r| vec![r.name.clone(), r.members.to_string(), r.topic.clone().unwrap_or_default()])
        .collect();
    let data: Vec<Value> = rooms
        .iter()
        .map(|r| json!({ "name": r.name, "members": r.members, "topic": r.topic, "permanent": r.permanent, "founder": r.founder }))
        .collect();
    Ok(AdminReply::done(
        format!("{}{} room(s)", table(&["ROOM", "MEMBERS", "TOPIC"], &rows), rooms.len()),
        Value::Array(data),
    ))
}

/// Counters plus what the core holds (asked of the hub).
pub(crate) async fn stats(control: &Control) -> Result<Snapshot, hub::Stopped> {
    let counts = hub::call(&control.hub, |h| {
        let c = h.server.counts();
        CoreCounts {
            users: c.users as u64,
            unregistered: (c.connections - c.users) as u64,
            operators: c.operators as u64,
            accounts: c.accounts as u64,
            rooms: c.rooms as u64,
        }
    })
    .await?;
    Ok(control.metrics.snapshot(counts))
}

fn render_stats(s: &Snapshot) -> String {
    let mut out = String::new();
    let pairs = |v: &[(&str, u64)]| v.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "uptime            {}", human_duration(s.uptime_seconds));
    let _ = writeln!(out, "connections       {}", pairs(&s.connections));
    let _ = writeln!(out, "accepted          {}", pairs(&s.connections_accepted));
    let _ = writeln!(
        out,
        "users online      {} (+{} registering, {} operators)",
        s.users_online, s.unregistered, s.operators
    );
    let _ = writeln!(out, "accounts          {}", s.accounts);
    let _ = writeln!(out, "rooms             {}", s.rooms);
    let _ = writeln!(out, "messages in       {} ({} chat)", s.messages_in, s.chat_messages_in);
    let _ = writeln!(out, "messages out      {}", s.messages_out);
    let _ = writeln!(out, "messages stored   {}", s.messages_stored);
    let _ = writeln!(out, "bytes in / out    {} / {}", human_bytes(s.bytes_in), human_bytes(s.bytes_out));
    let _ = writeln!(out, "login failures    {} ({} password checks run)", s.login_failures, s.password_checks);
    let _ = writeln!(out, "disconnects       {}", pairs(&s.disconnects));
    let commits: u64 = s.commit_buckets.iter().sum();
    let mean_ms = if commits > 0 { s.commit_sum_seconds * 1000.0 / commits as f64 } else { 0.0 };
    let _ = writeln!(out, "store commits     {commits} (mean {mean_ms:.2} ms)");
    let _ = writeln!(out, "cpu               {}", s.cpu_seconds.map_or("unknown".into(), |c| format!("{c:.2} s")));
    let _ = write!(out, "memory (RSS)      {}", s.resident_memory_bytes.map_or("unknown".into(), human_bytes));
    out
}

async fn broadcast(control: &Control, rest: &[String], by: &str) -> Result<AdminReply, hub::Stopped> {
    let text = rest.join(" ");
    if text.trim().is_empty() {
        return Ok(AdminReply::error("usage: broadcast MESSAGE..."));
    }
    tracing::info!(target: "audit", %by, text = %text, "broadcast");
    let sent = hub::call(&control.hub, move |h| h.server.announce(&text, now())).await?;
    Ok(AdminReply::done(format!("sent to {sent} user(s)"), json!({ "recipients": sent })))
}

async fn kill(control: &Control, rest: &[String], by: &str) -> Result<AdminReply, hub::Stopped> {
    let Some(nick) = rest.first().cloned() else { return Ok(AdminReply::error("usage: kill NICK [REASON...]")) };
    let reason = if rest.len() > 1 { rest[1..].join(" ") } else { "Killed by the administrator".into() };
    let by_owned = format!("admin ({by})");
    let target = nick.clone();
    let done = hub::call(&control.hub, move |h| h.server.kill(&target, &reason, &by_owned, now())).await?;
    Ok(if done {
        AdminReply::done(format!("{nick} disconnected"), json!({ "killed": nick }))
    } else {
        AdminReply::error(format!("nobody uses the nick {nick}"))
    })
}

async fn room_mode(
    control: &Control,
    room: &str,
    modes: &str,
    args: &[String],
    by: &str,
) -> Result<AdminReply, hub::Stopped> {
    let (r, m, a, by) = (room.to_owned(), modes.to_owned(), args.to_vec(), format!("admin ({by})"));
    let result = hub::call(&control.hub, move |h| h.server.room_mode(&r, &m, &a, &by, now())).await?;
    Ok(match result {
        Ok(applied) => {
            let change = applied.join(" ");
            AdminReply::done(format!("{room}: {change}"), json!({ "room": room, "changed": applied }))
        }
        Err(why) => AdminReply::error(why),
    })
}

async fn topic(control: &Control, room: &str, text: &str, by: &str) -> Result<AdminReply, hub::Stopped> {
    let (r, t, by) = (room.to_owned(), text.to_owned(), format!("admin ({by})"));
    let result = hub::call(&control.hub, move |h| h.server.room_topic(&r, &t, &by, now())).await?;
    Ok(match result {
        Ok(()) if text.is_empty() => {
            AdminReply::done(format!("{room}: topic cleared"), json!({ "room": room, "topic": null }))
        }
        Ok(()) => AdminReply::done(format!("{room}: topic set"), json!({ "room": room, "topic": text })),
        Err(why) => AdminReply::error(why),
    })
}

async fn ban(control: &Control, rest: &[String], by: &str) -> Result<AdminReply, hub::Stopped> {
    let mut words = rest.iter();
    let Some(mask) = words.next().cloned() else {
        return Ok(AdminReply::error("usage: ban MASK [--minutes N] [REASON...]"));
    };
    let mut minutes = None;
    let mut reason_words = Vec::new();
    while let Some(w) = words.next() {
        if w == "--minutes" {
            match words.next().and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => minutes = Some(n),
                None => return Ok(AdminReply::error("--minutes needs a whole number")),
            }
        } else {
            reason_words.push(w.clone());
        }
    }
    let reason = if reason_words.is_empty() { "Banned by the administrator".into() } else { reason_words.join(" ") };
    let duration = minutes.filter(|m| *m > 0).map(|m| Duration::from_secs(m * 60));
    let by = format!("admin ({by})");
    let m = mask.clone();
    let result = hub::call(&control.hub, move |h| h.server.ban(&m, &reason, duration, &by, now())).await?;
    Ok(match result {
        Ok(killed) => AdminReply::done(
            format!("banned {mask}; {killed} connection(s) closed"),
            json!({ "banned": mask, "disconnected": killed, "minutes": minutes }),
        ),
        Err(why) => AdminReply::error(why),
    })
}

async fn unban(control: &Control, rest: &[String], by: &str) -> Result<AdminReply, hub::Stopped> {
    let Some(mask) = rest.first().cloned() else { return Ok(AdminReply::error("usage: unban MASK")) };
    let by = format!("admin ({by})");
    let m = mask.clone();
    let removed = hub::call(&control.hub, move |h| h.server.unban(&m, &by)).await?;
    Ok(if removed {
        AdminReply::done(format!("unbanned {mask}"), json!({ "unbanned": mask }))
    } else {
        AdminReply::error(format!("no ban on {mask}"))
    })
}

async fn bans(control: &Control) -> Result<AdminReply, hub::Stopped> {
    let bans = hub::call(&control.hub, |h| h.server.klines()).await?;
    let now_ms = now().wall_ms;
    let rows: Vec<Vec<String>> = bans
        .iter()
        .map(|k| {
            let left = k.expires_ms.map_or("never".into(), |e| human_duration(e.saturating_sub(now_ms) / 1000));
            vec![k.mask.clone(), left, k.set_by.clone(), k.reason.clone()]
        })
        .collect();
    let data: Vec<Value> = bans
        .iter()
        .map(|k| json!({ "mask": k.mask, "reason": k.reason, "set_by": k.set_by, "set_at_ms": k.set_at_ms, "expires_ms": k.expires_ms }))
        .collect();
    Ok(AdminReply::done(
        format!("{}{} ban(s)", table(&["MASK", "EXPIRES IN", "BY", "REASON"], &rows), bans.len()),
        Value::Array(data),
    ))
}

/// The cluster's live nodes as this node saw them at its last poll (every second).
fn nodes(control: &Control) -> AdminReply {
    let Some(status) = &control.cluster else {
        return AdminReply::error("this server is not a cluster node (see --cluster)");
    };
    let view = match status.lock() {
        Ok(view) => view.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let this = |node: &str, incarnation: u64| node == view.node && incarnation == view.incarnation;
    let rows: Vec<Vec<String>> = view
        .members
        .iter()
        .map(|(node, incarnation, id)| {
            vec![
                node.clone(),
                format!("{incarnation:016x}"),
                id.map_or_else(|| "-".into(), |id| id.to_string()),
                if this(node, *incarnation) { "this node".into() } else { String::new() },
            ]
        })
        .collect();
    let members: Vec<Value> = view
        .members
        .iter()
        .map(|(node, incarnation, id)| {
            json!({ "node": node, "incarnation": format!("{incarnation:016x}"), "node_id": id, "this": this(node, *incarnation) })
        })
        .collect();
    let state = match view.state {
        crate::cluster::State::Serving => "serving",
        crate::cluster::State::CutOff => "cut off from the cluster bus (users dropped, joining again)",
        crate::cluster::State::Joining => "joining: reading the network's log (connections refused until then)",
    };
    let text = format!(
        "network {}, this node {} ({}, number {}): {state}\n{}{} live node(s)",
        view.network,
        view.node,
        format_args!("{:016x}", view.incarnation),
        view.node_id,
        table(&["NODE", "INCARNATION", "NUMBER", ""], &rows),
        rows.len()
    );
    let data = json!({
        "network": view.network, "node": view.node, "incarnation": format!("{:016x}", view.incarnation),
        "node_id": view.node_id, "state": view.state, "nodes": members,
    });
    AdminReply::done(text, data)
}

fn shutdown(control: &Control, rest: &[String], by: &str) -> Result<AdminReply, hub::Stopped> {
    let mut grace = None;
    let mut reason_words = Vec::new();
    let mut words = rest.iter();
    while let Some(w) = words.next() {
        if w == "--grace" {
            match words.next().and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => grace = Some(Duration::from_secs(n)),
                None => return Ok(AdminReply::error("--grace needs a number of seconds")),
            }
        } else {
            reason_words.push(w.clone());
        }
    }
    let reason = if reason_words.is_empty() { "Server shutting down".to_owned() } else { reason_words.join(" ") };
    tracing::info!(target: "audit", %by, %reason, ?grace, "shutdown requested");
    control.stop(&reason, grace);
    Ok(AdminReply::done("shutting down", json!({ "shutting_down": true, "reason": reason })))
}

/// Columns padded to their widest cell; an empty table says so.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &mut header.iter().copied());
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
