//! The web listener's flags on the real binary: plain HTTP on a public address is refused
//! before anything starts, with a message that names the key and the flag that allow it, and
//! `--no-web` leaves the web client's port (6698) unbound.

mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::process::ServerProcess;

/// How long a refused start may take before the test calls it a start.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The web client's default port.
const WEB_PORT: u16 = 6698;

#[test]
fn plain_http_on_a_public_address_is_refused_naming_the_key_and_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // Everything else on loopback: were the refusal broken, nothing would listen beyond it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["serve", "--web-listen-plain", "0.0.0.0:0", "--web-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
        .args(["--tls-listen", "127.0.0.1:0", "--no-quic", "--discovery", "off", "--data-dir"])
        .arg(&data)
        .env_remove("CHINWAG_CONFIG")
        .env_remove("CHINWAG_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chinwag serve");
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    while child.try_wait().expect("poll chinwag").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "chinwag serve started with plain HTTP on 0.0.0.0 instead of refusing:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused with a failure status: {stderr}");
    for part in ["web.listen_plain", "0.0.0.0:0", "--web-plain-public", "loopback"] {
        assert!(stderr.contains(part), "the refusal names {part:?}:\n{stderr}");
    }
    assert!(!data.exists(), "nothing is created for a refused configuration");
}

#[test]
fn no_web_binds_no_web_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_with(
        &dir.path().join("data"),
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--no-web", "--no-quic"],
    );
    let ports = listening_ports(server.pid());
    // The check sees the server's own listeners, so an absent 6698 means something.
    assert!(ports.contains(&server.plaintext[0].port()), "the IRC listener is among {ports:?}");
    assert!(ports.contains(&server.tls[0].port()), "the TLS listener is among {ports:?}");
    assert!(!ports.contains(&WEB_PORT), "--no-web, yet the server listens on {WEB_PORT}: {ports:?}");
    assert!(!server.log_tail().contains("web client on"), "no web client announced:\n{}", server.log_tail());
}

/// The TCP ports process `pid` listens on: its sockets (`/proc/PID/fd`) matched with the
/// kernel's listening sockets (`/proc/net/tcp`, `/proc/net/tcp6`) by inode.
fn listening_ports(pid: u32) -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the server's file descriptors")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address, rem_address, st, ..., inode (the tenth field); 0A is LISTEN.
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
                continue;
            };
            if *state != "0A" || !inodes.contains(*inode) {
                continue;
            }
            if let Some(port) = local.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok()) {
                ports.insert(port);
            }
        }
    }
    ports
}
