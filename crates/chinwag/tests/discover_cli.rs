//! `chinwag discover` and `chinwag status` against real `chinwag serve` processes, through real
//! multicast: the servers run in one network namespace, the commands in another, joined by a
//! veth pair the test creates (needs root, as CI has; the namespaces go when the test ends).
//! The `--discovery*` flags of `serve` are exercised on the way.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chinwag_discovery::netns::{self, Lan, Netns};

const WAIT: Duration = Duration::from_secs(20);
const BIN: &str = env!("CARGO_BIN_EXE_chinwag");

/// `chinwag serve` inside a namespace; killed on drop.
struct Serve {
    child: Child,
    /// The banner's "listening on tls" address.
    tls_port: u16,
}

impl Serve {
    fn start(ns: &Netns, data_dir: &Path, extra: &[&str]) -> Serve {
        let mut child = ns
            .command(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--tls-listen", "0.0.0.0:0"])
            .args(extra)
            .env_remove("CHINWAG_DATA_DIR")
            .env_remove("CHINWAG_SERVER_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chinwag serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut tls_port = None;
        loop {
            let line = rx.recv_timeout(WAIT).expect("chinwag serve prints its banner");
            if let Some(addr) = line.trim().strip_prefix("listening on tls ") {
                tls_port = addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port());
            }
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        Serve { child, tls_port: tls_port.expect("a TLS listener in the banner") }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(ns: &Netns, args: &[&str]) -> Output {
    ns.command(BIN).args(args).env("RUST_BACKTRACE", "0").output().expect("run chinwag")
}

#[test]
fn discover_and_status_find_the_servers_that_answer() {
    assert!(netns::available(), "this test needs root and iproute2 to create network namespaces");
    let lan = Lan::new("cli").expect("namespaces joined by a veth pair");
    let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    // One server on a custom port and the older group, one with discovery off.
    let alpha = Serve::start(
        &lan.server,
        dirs.0.path(),
        &["--server-name", "alpha.lan", "--discovery-port", "12399", "--discovery-group", "224.1.1.1"],
    );
    let _silent = Serve::start(&lan.server, dirs.1.path(), &["--server-name", "silent.lan", "--discovery", "off"]);

    let out = run(&lan.client, &["discover", "--json", "--timeout", "0.5", "--port", "12399", "--group", "224.1.1.1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = found.as_array().expect("an array").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["alpha.lan"], "{found:#}");
    let tls = format!("{}:{}", Lan::SERVER_IP, alpha.tls_port);
    let listeners = &found[0]["listeners"];
    assert_eq!(listeners[0]["transport"], "tls", "{listeners:#}");
    assert_eq!(listeners[0]["addr"], tls.as_str());
    assert_eq!(found[0]["rooms_total"], 3, "#general, #random and #tech");

    let out = run(&lan.client, &["discover", "--timeout", "0.5", "--port", "12399", "--group", "224.1.1.1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("alpha.lan ("), "{text}");
    assert!(text.contains(&format!("tls           {tls}")), "{text}");
    assert!(text.contains("fingerprint   SHA-256 "), "{text}");
    assert!(text.contains("#general"), "{text}");

    let out = run(&lan.client, &["status", &format!("{}:12399", Lan::SERVER_IP), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let one: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(one["name"], "alpha.lan");
    assert_eq!(one["rooms"].as_array().map(Vec::len), Some(3));

    // The default port has nobody: the silent server does not answer.
    let out = run(&lan.client, &["status", Lan::SERVER_IP, "--timeout", "0.3"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no answer from 10.77.0.1:12348"), "{err}");

    let out = run(&lan.client, &["discover", "--timeout", "0.3"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("No chinwag server answered"));
}

#[test]
fn serve_refuses_a_discovery_group_that_is_not_multicast() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--discovery-group", "10.1.1.1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run chinwag serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.1.1.1") && err.contains("not a multicast address"), "{err}");
}
