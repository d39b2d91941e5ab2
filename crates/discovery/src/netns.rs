//! Network namespaces for end-to-end tests (Linux, root; feature `netns`).
//!
//! A test makes its own little LAN: namespaces created with `ip netns add`, joined by veth
//! pairs, with multicast enabled. Code runs inside one with [`Netns::run`], which moves a fresh
//! thread into the namespace (sockets belong to the namespace of the thread that opens them).
//! Dropping a [`Netns`] deletes it, so a failing (panicking) test leaves nothing behind.

use std::fs::File;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether this process may create namespaces (root, with iproute2). Tests assert it, so that
/// a CI that lost root fails loudly instead of skipping.
pub fn available() -> bool {
    rustix::process::geteuid().is_root()
        && Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false)
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace whose loopback is up and carries multicast. The name is unique to this
    /// process and call; a stale namespace of the same name is removed first.
    pub fn new(tag: &str) -> io::Result<Netns> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("cw-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        remove_stale();
        run_ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up", "multicast", "on"])?;
        // No duplicate address detection on interfaces made here: their IPv6 addresses are
        // usable at once instead of a second or two later. (No IPv6 at all: nothing to do.)
        ns.run(|| {
            for conf in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/accept_dad"), "0");
            }
        });
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args…`.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// Runs `f` on a new thread inside this namespace and returns what it returns.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        let thread = std::thread::spawn(move || {
            enter(&path);
            f()
        });
        match thread.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs `f` on a new thread inside this namespace without waiting for it.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }

    /// A command (e.g. the `chinwag` binary) that will run inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Joins `a` and `b` with a veth pair, one end in each, addressed `a_addr` and `b_addr`
/// (CIDR, e.g. `10.7.0.1/24`), both up with multicast. The pair goes with the namespaces.
pub fn link(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) -> io::Result<(String, String)> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    // Interface names are at most 15 bytes.
    let pid = std::process::id() % 100_000;
    let (a_if, b_if) = (format!("cwa{pid}x{n}"), format!("cwb{pid}x{n}"));
    run_ip(&["link", "add", &a_if, "netns", a.name(), "type", "veth", "peer", "name", &b_if, "netns", b.name()])?;
    for (ns, ifname, addr) in [(a, &a_if, a_addr), (b, &b_if, b_addr)] {
        ns.ip(&["addr", "add", addr, "dev", ifname])?;
        ns.ip(&["link", "set", ifname, "up", "multicast", "on"])?;
    }
    for (ns, ifname) in [(a, &a_if), (b, &b_if)] {
        wait_until_up(ns, ifname)?;
    }
    Ok((a_if, b_if))
}

/// Deletes namespaces left by test processes that no longer run (killed before their `Drop`):
/// their names are `cw-TAG-PID-N`.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let mut parts = name.rsplitn(3, '-');
        let (Some(_seq), Some(pid)) = (parts.next(), parts.next()) else { continue };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if name.starts_with("cw-") && pid.parse::<u32>().is_ok() && !alive {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Moves the calling thread into the namespace mounted at `path`.
fn enter(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("entering {path}: {e}"));
}

/// Waits until the kernel reports `ifname` as up. Until then (the kernel's link watcher runs
/// up to a second after the carrier comes on) the interface drops what is sent through it.
fn wait_until_up(ns: &Netns, ifname: &str) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = Command::new("ip").args(["-n", ns.name(), "-o", "link", "show", "dev", ifname]).output()?;
        if String::from_utf8_lossy(&out.stdout).contains(" state UP ") {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(io::Error::other(format!("{ifname} in {} did not come up within 5 s", ns.name())));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits until no IPv6 address of `ifname` is still tentative (not yet usable as a source).
pub fn wait_ipv6_ready(ns: &Netns, ifname: &str) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = Command::new("ip").args(["-n", ns.name(), "-6", "addr", "show", "dev", ifname]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("inet6") && !text.contains("tentative") {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(io::Error::other(format!("IPv6 on {ifname} in {} not ready within 5 s: {text}", ns.name())));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// The smallest LAN: a server namespace and a client namespace joined by one veth pair,
/// [`Lan::SERVER_IP`] ↔ [`Lan::CLIENT_IP`] on a /24.
#[derive(Debug)]
pub struct Lan {
    pub server: Netns,
    pub client: Netns,
    /// The two ends of the veth pair (to add addresses to them).
    pub server_if: String,
    pub client_if: String,
}

impl Lan {
    pub const SERVER_IP: &'static str = "10.77.0.1";
    pub const CLIENT_IP: &'static str = "10.77.0.2";

    pub fn new(tag: &str) -> io::Result<Lan> {
        let server = Netns::new(&format!("{tag}s"))?;
        let client = Netns::new(&format!("{tag}c"))?;
        let (server_if, client_if) =
            link(&server, &format!("{}/24", Lan::SERVER_IP), &client, &format!("{}/24", Lan::CLIENT_IP))?;
        Ok(Lan { server, client, server_if, client_if })
    }
}
