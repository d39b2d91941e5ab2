//! `chinwag bench` against a real `chinwag serve`: every scenario in a short form (a few
//! seconds), checking that the numbers add up (everything sent is delivered, in order, and the
//! JSON line has what scripts read) and that targets off this machine are refused.
//!
//! The counts are small so that the debug build finishes quickly; the bench's own `--duration`
//! bounds each run, so a broken server makes a test fail, not hang.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::process::ServerProcess;

/// Seconds any one bench run may take before it stops by itself.
const RUN_LIMIT: &str = "30";

/// Runs `chinwag bench ARGS --json-out FILE` and returns the JSON line it appended.
fn bench(server: &ServerProcess, dir: &Path, args: &[&str]) -> Value {
    let json = dir.join("bench.jsonl");
    let _ = std::fs::remove_file(&json);
    let output = run_bench(server, args, &["--json-out", json.to_str().expect("utf-8 temp path")]);
    assert!(
        output.status.success(),
        "chinwag bench {args:?} failed ({}):\n{}\n{}\nserver output:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log_tail()
    );
    let text = std::fs::read_to_string(&json).expect("the JSON line was written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line per run: {text}");
    serde_json::from_str(lines[0]).expect("the JSON line parses")
}

fn run_bench(server: &ServerProcess, args: &[&str], extra: &[&str]) -> Output {
    let target = server.plaintext[0].to_string();
    let pid = server.pid().to_string();
    Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .arg("bench")
        .args(args)
        .args(["--server-pid", &pid, "--duration", RUN_LIMIT])
        .args(if args.contains(&"--target") { vec![] } else { vec!["--target", &target] })
        .args(extra)
        .output()
        .expect("run chinwag bench")
}

fn start() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("create a temporary data directory");
    let server =
        ServerProcess::start_with(&dir.path().join("data"), &["127.0.0.1:0"], &["127.0.0.1:0"], &["--load-test"]);
    (dir, server)
}

fn int(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} is not a whole number in {v}"))
}

fn float(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Every message reached everyone, in order, and the rates and percentiles are plausible.
fn assert_complete(v: &Value, expected: u64) {
    assert_eq!(int(v, "expected"), expected, "{v}");
    assert_eq!(int(v, "delivered"), expected, "{v}");
    assert_eq!(int(v, "lost"), 0, "{v}");
    assert_eq!(int(v, "reordered"), 0, "{v}");
    assert_eq!(v["timed_out"], Value::Bool(false), "{v}");
    assert!(float(v, "deliveries_per_s") > 0.0, "{v}");
    assert!(float(v, "elapsed_s") > 0.0, "{v}");
    assert!(v["server_cpu_s"].is_number(), "{v}");
    let lat = &v["latency_us"];
    let (p50, p99, p999, max) = (int(lat, "p50"), int(lat, "p99"), int(lat, "p999"), int(lat, "max"));
    assert!(0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max, "{v}");
    assert!(max < 30_000_000, "a latency longer than the run: {v}");
    assert_stalls_measured(v);
}

/// The machine's stalls were watched on every core over the measured phase.
fn assert_stalls_measured(v: &Value) {
    let cores = v["machine_stalls"].as_array().unwrap_or_else(|| panic!("no machine_stalls in {v}"));
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cores.len() >= online.min(2), "one meter per core: {v}");
    for core in cores {
        assert!(float(core, "measured_s") > 0.0, "{v}");
        assert!(float(core, "longest_ms") >= float(core, "total_ms") / int(core, "count").max(1) as f64, "{v}");
    }
}

#[test]
fn fanout_saturated_delivers_every_message_to_every_member_in_order() {
    let (dir, server) = start();
    let v = bench(&server, dir.path(), &["fanout", "--members", "20", "--senders", "4", "--messages", "300"]);
    assert_eq!(v["scenario"], "fanout");
    assert_eq!(int(&v, "sent"), 4 * 300);
    // Senders do not get their own messages back (no echo-message): 19 copies of each.
    assert_complete(&v, 4 * 300 * 19);
    assert!(v["deliveries_per_cpu_s"].is_number(), "{v}");
    // Saturated: no schedule, so no quiet latency either.
    assert!(v.get("latency_quiet_us").is_none() && v.get("quiet_share").is_none(), "{v}");
}

#[test]
fn fanout_at_a_fixed_rate_takes_as_long_as_the_rate_says() {
    let (dir, server) = start();
    let v = bench(
        &server,
        dir.path(),
        &["fanout", "--members", "10", "--senders", "2", "--messages", "100", "--rate", "1000"],
    );
    assert_eq!(int(&v, "rate"), 1000);
    assert_complete(&v, 2 * 100 * 9);
    // 200 messages at 1000/s cannot be delivered in much less than 0.2 s.
    assert!(float(&v, "elapsed_s") >= 0.15, "{v}");
    // A fixed rate also reports the latency of the deliveries no machine stall touched.
    let share = float(&v, "quiet_share");
    assert!(share > 0.0 && share <= 1.0, "{v}");
    let quiet = &v["latency_quiet_us"];
    assert!(int(quiet, "p50") > 0 && int(quiet, "max") <= int(&v["latency_us"], "max"), "{v}");
}

#[test]
fn pairs_deliver_every_private_message_in_order() {
    let (dir, server) = start();
    let v = bench(&server, dir.path(), &["pairs", "--members", "20", "--messages", "200"]);
    assert_eq!(int(&v, "senders"), 20);
    assert_complete(&v, 20 * 200);
}

#[test]
fn history_counts_durable_echoes() {
    let (dir, server) = start();
    let v = bench(&server, dir.path(), &["history", "--senders", "4", "--messages", "300"]);
    assert_complete(&v, 4 * 300);
}

/// The durability benchmark on the PostgreSQL store (a fresh database): every echo counted is a
/// message that PostgreSQL holds, committed before the echo.
#[test]
fn history_counts_durable_echoes_on_postgres() {
    let db = chinwag_store::test_db::TestDatabase::create();
    let dir = tempfile::tempdir().expect("create a temporary data directory");
    let server = ServerProcess::start_with(
        &dir.path().join("data"),
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--load-test", "--store", db.url()],
    );
    let v = bench(&server, dir.path(), &["history", "--senders", "4", "--messages", "300"]);
    assert_complete(&v, 4 * 300);
    let stored = db.query("SELECT count(*) FROM messages WHERE command = 'PRIVMSG'").expect("count the messages");
    let stored: u64 = stored[0].as_deref().expect("a count").parse().expect("a number");
    assert!(stored >= 4 * 300, "{stored} messages in PostgreSQL after 1,200 durable echoes");
}

#[test]
fn connect_registers_every_connection_plaintext_and_tls() {
    let (dir, server) = start();
    let v = bench(&server, dir.path(), &["connect", "--connections", "200", "--in-flight", "20"]);
    assert_eq!(int(&v, "registered"), 200, "{v}");
    assert_eq!(int(&v, "failed"), 0, "{v}");
    assert!(float(&v, "registrations_per_s") > 0.0, "{v}");
    assert!(int(&v["latency_us"], "p50") > 0, "{v}");
    assert_stalls_measured(&v);

    let tls = server.tls[0].to_string();
    let v = bench(&server, dir.path(), &["connect", "--connections", "50", "--tls", "--target", &tls]);
    assert_eq!(v["tls"], Value::Bool(true));
    assert_eq!(int(&v, "registered"), 50, "{v}");
}

#[test]
fn idle_reports_server_memory_per_connection() {
    let (dir, server) = start();
    let v = bench(&server, dir.path(), &["idle", "--connections", "300", "--hold", "1"]);
    assert_eq!(int(&v, "registered"), 300, "{v}");
    let (before, after) = (int(&v, "rss_before_kib"), int(&v, "rss_after_kib"));
    assert!(before > 0 && after > before, "holding 300 connections costs some memory: {v}");
    assert!(float(&v, "rss_per_conn_bytes") > 0.0, "{v}");
}

#[test]
fn plot_is_an_svg_file() {
    let (dir, server) = start();
    let plot = dir.path().join("plot.svg");
    let output = run_bench(
        &server,
        &["fanout", "--members", "5", "--senders", "1", "--messages", "50"],
        &["--plot", plot.to_str().expect("utf-8 temp path")],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("deliveries/s") && table.contains("latency ms"), "{table}");
}

#[test]
fn targets_off_this_machine_are_refused() {
    for target in ["192.0.2.1:6667", "[2001:db8::1]:6667"] {
        let output = Command::new(env!("CARGO_BIN_EXE_chinwag"))
            .args(["bench", "fanout", "--target", target, "--duration", "5"])
            .output()
            .expect("run chinwag bench");
        assert!(!output.status.success(), "{target} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("not a loopback address"), "{target}: {stderr}");
    }
}

/// Two separate servers (not a cluster): `--target` twice spreads the members round-robin.
/// `history` keeps each sender alone in its own room, so every message is delivered although
/// the servers share nothing; CPU time is summed over both processes.
#[test]
fn several_targets_share_the_members_and_the_cpu_time() {
    let (dir_a, a) = start();
    let (_dir_b, b) = start();
    let v = bench(
        &a,
        dir_a.path(),
        &[
            "history",
            "--senders",
            "4",
            "--messages",
            "20",
            "--target",
            &a.plaintext[0].to_string(),
            "--target",
            &b.plaintext[0].to_string(),
            "--server-pid",
            &b.pid().to_string(),
        ],
    );
    assert_complete(&v, 80);
    assert_eq!(v["target"], Value::String(format!("{},{}", a.plaintext[0], b.plaintext[0])), "{v}");
    assert_eq!(v["per_target"], serde_json::json!([2, 2]), "{v}");
    assert!(v.get("server_cpu_unavailable").is_none(), "{v}");
}

/// The spread is real: while `idle` holds its connections, each server counts its share of
/// them (LUSERS), and memory is summed over both processes.
#[test]
fn several_targets_each_hold_their_share_of_connections() {
    let (dir, a) = start();
    let (_dir_b, b) = start();
    let json = dir.path().join("idle.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["bench", "idle", "--connections", "6", "--hold", "8", "--duration", RUN_LIMIT])
        .args(["--target", &a.plaintext[0].to_string(), "--target", &b.plaintext[0].to_string()])
        .args(["--server-pid", &a.pid().to_string(), "--server-pid", &b.pid().to_string()])
        .args(["--json-out", json.to_str().expect("utf-8 temp path")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run chinwag bench");
    for (name, server) in [("first", &a), ("second", &b)] {
        let mut probe = support::client::Client::plain(server.plaintext[0], name);
        probe.register(&format!("probe{name}"));
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            probe.send("LUSERS");
            let reply = probe.expect_command("251");
            let numbers: Vec<u64> =
                reply.params.last().map_or("", String::as_str).split(' ').filter_map(|w| w.parse().ok()).collect();
            // Visible plus invisible users: the bench's three and the probe.
            let users = numbers.first().copied().unwrap_or(0) + numbers.get(1).copied().unwrap_or(0);
            if users >= 4 {
                break;
            }
            assert!(std::time::Instant::now() < give_up, "the {name} server never held 3 bench connections: {reply:?}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let status = child.wait().expect("wait for chinwag bench");
    assert!(status.success(), "chinwag bench idle failed: {status}");
    let v: Value = serde_json::from_str(std::fs::read_to_string(&json).expect("the JSON line").trim()).expect("JSON");
    assert_eq!(int(&v, "registered"), 6, "{v}");
    assert_eq!(v["per_target"], serde_json::json!([3, 3]), "{v}");
    assert!(int(&v, "rss_after_kib") > 0, "{v}");
}

/// Without any `--server-pid` the report says why server CPU is missing instead of leaving
/// it out silently.
#[test]
fn server_cpu_without_a_pid_is_reported_unavailable() {
    let (_dir, server) = start();
    let output = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["bench", "connect", "--connections", "5", "--duration", RUN_LIMIT])
        .args(["--target", &server.plaintext[0].to_string()])
        .output()
        .expect("run chinwag bench");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("server CPU") && table.contains("unavailable (no --server-pid given)"), "{table}");
}
