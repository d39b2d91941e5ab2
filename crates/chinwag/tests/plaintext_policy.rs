//! No password crosses a network in clear: on a plaintext connection from a non-loopback
//! address, SASL PLAIN, NickServ IDENTIFY, `PASS account:password` and REGISTER are refused
//! with a message that says to use TLS; over TLS from the same address they work, and so does
//! plaintext from loopback.
//!
//! # Where the non-loopback address comes from
//!
//! Tests may use only loopback or a network namespace of their own: they never add addresses to
//! the machine's interfaces. So [`passwords_in_clear_from_the_network_are_refused`] re-runs this
//! test binary under `unshare --net`, which gives it a fresh network namespace holding nothing
//! but a `lo` that is down, and only [`inside_a_network_namespace`] runs there. It brings `lo`
//! up, adds [`NETWORK_ADDR`] (198.51.100.7, from TEST-NET-2, a range reserved for documentation)
//! to it, and starts `chinwag serve` listening in clear on that address and on 127.0.0.1, and
//! with TLS on that address. A client that connects to that address inside the namespace comes
//! from it (the kernel takes the destination, a local address, as the source), so the server
//! sees a peer that is not loopback. Everything, the address included, goes away with the
//! namespace when the inner test exits.
//!
//! `unshare --net` needs CAP_SYS_ADMIN, which CI has (it runs as root). Without it the outer
//! test tries `unshare --net --map-root-user`, which many kernels allow unprivileged (a user
//! namespace in which we are root owns the new network namespace). If neither works the test
//! fails and says so: a skip would hide a CI image that lost the ability.
//!
//! The inner test refuses to touch any interface unless the environment names the outer test's
//! network namespace and it is in another one, so `cargo test -- --ignored` cannot make it
//! change the host's network.

mod support;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chinwag_proto::Message;
use support::client::{sasl_plain, Client, PlainClient, TlsClient, Transport};
use support::process::ServerProcess;

/// The inner test's name, for `--exact`.
const INNER_TEST: &str = "inside_a_network_namespace";
/// Set for the inner test to the outer test's network namespace (`net:[4026531840]`); unset,
/// the inner test does nothing.
const OUTER_NETNS_ENV: &str = "CHINWAG_TEST_OUTER_NETNS";
/// The last line of a passing inner test, so the outer one knows the checks ran (a renamed
/// inner test would otherwise pass as "0 tests run").
const INNER_DONE: &str = "plaintext policy: all checks passed inside the namespace";
/// The non-loopback address, added to `lo` inside the namespace only. From TEST-NET-2 (RFC
/// 5737) rather than TEST-NET-1, which some virtual machines use on real interfaces (the one
/// this was written on does), so that no log can be read as touching those.
const NETWORK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// How long the inner test may take in all, start-up of the server included.
const INNER_DEADLINE: Duration = Duration::from_secs(120);
/// The ways to get a network namespace, tried in order: as root, then as an unprivileged user
/// who is root in a new user namespace.
const UNSHARE_VARIANTS: [&[&str]; 2] = [&["--net"], &["--net", "--map-root-user"]];
/// The account the checks log in to, registered over TLS first so that refusals are not about
/// a wrong password.
const ACCOUNT: &str = "alice";
/// No spaces: NickServ IDENTIFY takes the password as one word.
const PASSWORD: &str = "correct-horse-battery";

#[test]
fn passwords_in_clear_from_the_network_are_refused() {
    let unshare = choose_unshare();
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new("unshare")
        .args(unshare)
        .arg("--")
        .arg(&exe)
        .args(["--exact", INNER_TEST, "--ignored", "--nocapture", "--test-threads=1"])
        .env(OUTER_NETNS_ENV, own_netns())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let (done, outputs) = mpsc::channel();
    for pipe in [child.stdout.take().map(box_pipe), child.stderr.take().map(box_pipe)].into_iter().flatten() {
        let done = done.clone();
        thread::spawn(move || {
            let mut pipe = pipe;
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = done.send(String::from_utf8_lossy(&text).into_owned());
        });
    }
    let deadline = Instant::now() + INNER_DEADLINE;
    let mut output = String::new();
    for _ in 0..2 {
        match outputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(text) => output.push_str(&text),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the test inside the namespace did not finish within {INNER_DEADLINE:?}; output so far:\n{output}"
                );
            }
        }
    }
    let status = child.wait().expect("reap unshare");
    assert!(
        status.success() && output.contains(INNER_DONE),
        "the test inside the network namespace (unshare {}) failed ({status}); its output:\n{output}",
        unshare.join(" ")
    );
}

fn box_pipe(pipe: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(pipe)
}

/// The first `unshare` invocation that can make a network namespace here; fails the test with
/// every error if none can.
fn choose_unshare() -> &'static [&'static str] {
    let mut errors = String::new();
    for flags in UNSHARE_VARIANTS {
        match Command::new("unshare").args(flags).args(["--", "true"]).output() {
            Ok(out) if out.status.success() => return flags,
            Ok(out) => {
                errors.push_str(&format!(
                    "\n  unshare {} -- true: {} {}",
                    flags.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Err(e) => panic!("cannot run `unshare` ({e}); it is in util-linux: apt-get install -y util-linux"),
        }
    }
    panic!(
        "this test needs a network namespace of its own and cannot make one: run it as root (CI \
         does) or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 \
         or user.max_user_namespaces > 0).{errors}"
    );
}

/// This process's network namespace, as `/proc/self/ns/net` names it.
fn own_netns() -> String {
    let link = std::fs::read_link("/proc/self/ns/net").expect("read /proc/self/ns/net");
    link.to_string_lossy().into_owned()
}

#[test]
#[ignore = "run by passwords_in_clear_from_the_network_are_refused inside a network namespace"]
fn inside_a_network_namespace() {
    let Ok(outer) = std::env::var(OUTER_NETNS_ENV) else {
        println!("{INNER_TEST} only runs inside the namespace its outer test makes; nothing to do");
        return;
    };
    let inner = own_netns();
    assert_ne!(inner, outer, "refusing to change interfaces: this is the outer test's network namespace");
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", &format!("{NETWORK_ADDR}/32"), "dev", "lo"]);

    let dir = tempfile::tempdir().expect("create a temporary data directory");
    let network = format!("{NETWORK_ADDR}:0");
    let server = ServerProcess::start(dir.path(), &[&network, "127.0.0.1:0"], &[&network]);
    let (plain_network, plain_loopback, tls_network) = (server.plaintext[0], server.plaintext[1], server.tls[0]);
    let fingerprint = server.fingerprint.clone();

    // Over TLS from the network address, an account can be registered...
    let mut tls = TlsClient::tls(tls_network, &fingerprint, "TLS REGISTER");
    assert_source(&tls, IpAddr::V4(NETWORK_ADDR));
    tls.send(&format!("NICK {ACCOUNT}"));
    tls.send(&format!("REGISTER * * {PASSWORD}"));
    let reply = tls.expect("REGISTER or FAIL", |m| m.command == "REGISTER" || m.command == "FAIL");
    if reply.params.first().map(String::as_str) != Some("SUCCESS") {
        tls.fail(&format!("REGISTER over TLS should succeed, got {reply:?}"));
    }
    tls.expect_command("900");
    tls.send("QUIT");

    // ...but in clear from the same address, no password is taken, even the right one.
    let mut plain = PlainClient::plain(plain_network, "plaintext SASL, IDENTIFY, REGISTER");
    assert_source(&plain, IpAddr::V4(NETWORK_ADDR));
    let mut received = Vec::new();
    plain.request_caps("sasl");
    plain.send("NICK mallory");
    plain.send("USER mallory 0 * :mallory");
    plain.send("AUTHENTICATE PLAIN");
    received.extend(plain.read_until("904 or AUTHENTICATE +", |m| m.command == "904" || m.command == "AUTHENTICATE"));
    let reply = received.last().cloned().expect("read_until returns the matching line");
    if reply.command != "904" || !mentions_tls(&reply) {
        plain.fail(&format!("AUTHENTICATE PLAIN in clear should get 904 saying to use TLS, got {reply:?}"));
    }
    plain.send("CAP END");
    received.extend(plain.expect_end_of_motd());

    plain.send(&format!("PRIVMSG NickServ :IDENTIFY {ACCOUNT} {PASSWORD}"));
    received.extend(plain.read_until("a NOTICE from NickServ", |m| m.command == "NOTICE" && from_nickserv(m)));
    let reply = received.last().cloned().expect("read_until returns the matching line");
    if !mentions_tls(&reply) {
        plain.fail(&format!("IDENTIFY in clear should be refused saying to use TLS, got {reply:?}"));
    }

    plain.send("REGISTER * * password123");
    received.extend(plain.read_until("REGISTER or FAIL", |m| m.command == "REGISTER" || m.command == "FAIL"));
    let reply = received.last().cloned().expect("read_until returns the matching line");
    let code = reply.params.get(1).map(String::as_str);
    if reply.command != "FAIL" || code != Some("INSECURE_CONNECTION") || !mentions_tls(&reply) {
        plain.fail(&format!("REGISTER in clear should get FAIL REGISTER INSECURE_CONNECTION, got {reply:?}"));
    }
    assert_not_logged_in(&mut plain, received);

    let mut pass = PlainClient::plain(plain_network, "plaintext PASS");
    assert_source(&pass, IpAddr::V4(NETWORK_ADDR));
    pass.send(&format!("PASS {ACCOUNT}:{PASSWORD}"));
    pass.send("NICK eve");
    pass.send("USER eve 0 * :eve");
    // PASS is answered during registration, before the welcome.
    let received = pass.expect_end_of_motd();
    if !received.iter().any(|m| m.command == "NOTICE" && from_nickserv(m) && mentions_tls(m)) {
        pass.fail("PASS account:password in clear should get a NOTICE from NickServ saying to use TLS");
    }
    assert_not_logged_in(&mut pass, received);

    // The refusals are about the transport: the same login works over TLS from the same address,
    let mut tls = TlsClient::tls(tls_network, &fingerprint, "TLS SASL");
    assert_source(&tls, IpAddr::V4(NETWORK_ADDR));
    sasl_login_succeeds(&mut tls, "bob");

    // and in clear from loopback, where it never crossed a network.
    let mut loopback = PlainClient::plain(plain_loopback, "loopback SASL");
    assert_source(&loopback, IpAddr::V4(Ipv4Addr::LOCALHOST));
    sasl_login_succeeds(&mut loopback, "carol");

    drop(server);
    println!("{INNER_DONE}");
}

/// Runs `ip` with `args`, failing the test with its output if it fails.
fn ip(args: &[&str]) {
    let program = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("ip");
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}); it is in iproute2: apt-get install -y iproute2"));
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The server sees the connection coming from `ip`: our end's address.
fn assert_source<S: Transport>(client: &Client<S>, ip: IpAddr) {
    let local = client.local_addr();
    if local.ip() != ip {
        client.fail(&format!("expected to connect from {ip}, but the connection comes from {local}"));
    }
}

fn mentions_tls(reply: &Message) -> bool {
    reply.params.last().is_some_and(|text| text.contains("TLS"))
}

fn from_nickserv(m: &Message) -> bool {
    m.source.as_deref().is_some_and(|s| s.split('!').next() == Some("NickServ"))
}

/// No 900 (logged in) among `received` nor before the answer to a round trip: whatever was
/// refused stays refused.
fn assert_not_logged_in<S: Transport>(client: &mut Client<S>, mut received: Vec<Message>) {
    client.send("PING :are-we-logged-in");
    received.extend(client.read_until("PONG", |m| m.command == "PONG"));
    if received.iter().any(|m| m.command == "900") {
        client.fail("logged in (900) although every password was sent in clear");
    }
}

/// SASL PLAIN during registration succeeds (903, and 900 before it).
fn sasl_login_succeeds<S: Transport>(client: &mut Client<S>, nick: &str) {
    client.request_caps("sasl");
    client.send(&format!("NICK {nick}"));
    client.send(&format!("USER {nick} 0 * :{nick}"));
    client.send("AUTHENTICATE PLAIN");
    let reply = client.expect("AUTHENTICATE + or 904", |m| m.command == "AUTHENTICATE" || m.command == "904");
    if reply.command != "AUTHENTICATE" {
        client.fail(&format!("AUTHENTICATE PLAIN should be accepted here, got {reply:?}"));
    }
    client.send(&format!("AUTHENTICATE {}", sasl_plain(ACCOUNT, PASSWORD)));
    let lines = client.read_until("903 or 904", |m| m.command == "903" || m.command == "904");
    if lines.last().map(|m| m.command.as_str()) != Some("903") || !lines.iter().any(|m| m.command == "900") {
        client.fail("SASL PLAIN with the right password should log in (900, 903)");
    }
    client.send("CAP END");
    client.expect_command("001");
}
