//! `chinwag bench transports` as a user runs it: against the real server it starts, all five
//! transports answer with sane numbers; inside a network namespace with induced loss, the
//! datagram transports lose probes while the streams deliver every one (late).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// Runs the bench with `extra` flags and returns its rows by transport name.
fn run_bench(messages: u64, duration: u64, extra: &[&str]) -> (Vec<Value>, String) {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let json = out_dir.path().join("result.jsonl");
    let plot = out_dir.path().join("plot.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["bench", "transports", "--in-flight", "16"])
        .args(["--messages", &messages.to_string(), "--duration", &duration.to_string()])
        .arg("--json-out")
        .arg(&json)
        .arg("--plot")
        .arg(&plot)
        .args(extra)
        .output()
        .expect("run chinwag bench transports");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bench failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for name in ["tcp", "tls", "quic-stream", "quic-datagram", "udp"] {
        assert!(stdout.contains(name), "the table names {name}: {stdout}");
    }
    assert!(stdout.contains("raw UDP echo"), "the table says what the UDP row is: {stdout}");
    let svg = std::fs::read_to_string(&plot).expect("the plot is written");
    assert!(svg.starts_with("<svg") && svg.contains("quic-datagram"), "{svg}");
    let line = std::fs::read_to_string(&json).expect("the JSON line is written");
    let value: Value = serde_json::from_str(line.trim()).expect("one JSON line");
    assert_eq!(value["scenario"], "transports");
    let rows = value["rows"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 5, "{value}");
    let impairment = value["impairment"].as_str().expect("the impairment applied").to_owned();
    assert!(stdout.contains(&format!("impairment: {impairment}")), "{stdout}");
    (rows, impairment)
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter().find(|r| r["transport"] == name).unwrap_or_else(|| panic!("no {name} row in {rows:?}"))
}

fn num(row: &Value, key: &str) -> f64 {
    row[key].as_f64().unwrap_or_else(|| panic!("{key} in {row}"))
}

#[test]
fn every_transport_answers_on_loopback() {
    let (rows, impairment) = run_bench(60, 25, &[]);
    assert_eq!(impairment, "none");
    for name in ["tcp", "tls", "quic-stream", "quic-datagram", "udp"] {
        let r = row(&rows, name);
        assert_eq!(num(r, "sent"), 60.0, "{r}");
        assert_eq!(num(r, "received"), 60.0, "nothing is lost on a clean loopback: {r}");
        assert_eq!(num(r, "lost") + num(r, "unanswered"), 0.0, "{r}");
        let (p50, p99, max) = (num(r, "p50_us"), num(r, "p99_us"), num(r, "max_us"));
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "percentiles in order: {r}");
        assert!(max < Duration::from_secs(2).as_micros() as f64, "{r}");
        assert!(num(r, "per_sec") > 0.0, "{r}");
        assert!(num(r, "setup_us") > 0.0, "{r}");
    }
}

#[test]
fn under_induced_loss_datagrams_are_lost_and_streams_are_not() {
    // Room enough for QUIC's loss recovery on a nearly idle connection (a probe lost twice
    // waits out backed-off probe timeouts, seconds each): a phase ends as soon as every probe
    // is answered, so this bounds only the worst case.
    let (rows, impairment) = run_bench(30, 150, &["--netem", "loss 10%"]);
    assert!(impairment.contains("10%"), "the run says what loss it applied: {impairment}");
    for name in ["tcp", "tls", "quic-stream"] {
        let r = row(&rows, name);
        assert_eq!(num(r, "lost") + num(r, "unanswered"), 0.0, "a stream retransmits: {r}");
        assert_eq!(num(r, "received"), 30.0, "{r}");
    }
    for name in ["quic-datagram", "udp"] {
        let r = row(&rows, name);
        // 60 probes (both phases), 10% lost each way: P(no loss at all) is about 3e-6.
        assert!(num(r, "lost") > 0.0, "10% loss shows: {r}");
        assert!(num(r, "received") > 0.0, "and the rest arrive: {r}");
    }
}
