//! `chinwag bench transports`: round-trip latency and throughput of plain TCP, TLS, a QUIC
//! stream, QUIC datagrams and raw UDP, against a real `chinwag serve` started for the run,
//! optionally under loss and delay from `tc netem` inside a network namespace of its own.
//!
//! What travels: on the three stream transports, `PING :SEQ` answered by the server's PONG
//! (one at a time for latency, a window of them for throughput). On QUIC datagrams, a `+typing`
//! TAGMSG the client sends to its own nick, with the sequence number in a second client-only
//! tag; the server relays it back as a datagram. There is no IRC over raw UDP (logins in clear
//! over UDP are what chinwag refuses to do), so the raw UDP row is an echo that the bench runs
//! itself next to the client: the floor that the others are compared with.
//!
//! Under netem, the bench creates a namespace, sets the qdisc on its loopback, starts the server
//! in it and runs itself again inside (`--inside`) for the measuring part; the namespace is
//! deleted at the end whatever happens. Every phase is bounded by a message count and a
//! deadline; a datagram unanswered after a timeout (see [`LOSS_TIMEOUT`]) counts as lost.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chinwag_proto::Message;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};

/// A datagram (or raw UDP packet) not answered within this, plus four times the slowest round
/// trip seen so far in the phase, is lost (at most [`MAX_LOSS_TIMEOUT`]).
const LOSS_TIMEOUT: Duration = Duration::from_millis(200);
const MAX_LOSS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server may take to start listening.
const STARTUP: Duration = Duration::from_secs(15);
/// The client-only tag that carries the sequence number of a datagram probe.
const SEQ_TAG: &str = "+chinwag/seq";

/// What one run asks for.
#[derive(Clone, Debug)]
pub struct Plan {
    pub messages: u64,
    pub in_flight: usize,
    pub duration: Duration,
    pub netem: Option<String>,
}

/// One transport's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub transport: String,
    /// Round trips attempted one at a time, and how many came back.
    pub sent: u64,
    pub received: u64,
    /// Datagrams lost in both phases (unanswered after the loss timeout). Always 0 on streams.
    pub lost: u64,
    /// Probes still unanswered when the phase's deadline came (both phases): a stream stalled
    /// behind retransmissions, or a run given too little `--duration`.
    pub unanswered: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Round trips per second with `in_flight` outstanding.
    pub per_sec: f64,
    /// Time to be ready to send: connect, handshake and IRC registration (for `udp`, binding a
    /// socket: there is no handshake).
    pub setup_us: u64,
}

/// The addresses of the server being measured.
#[derive(Clone, Copy, Debug)]
pub struct Targets {
    pub tcp: SocketAddr,
    pub tls: SocketAddr,
    pub quic: SocketAddr,
}

impl Targets {
    /// `TCP,TLS,QUIC` as given to `--inside`.
    pub fn parse(text: &str) -> Result<Targets> {
        let addrs: Vec<SocketAddr> = text
            .split(',')
            .map(|a| a.parse().with_context(|| format!("{a:?} is not ADDR:PORT")))
            .collect::<Result<_>>()?;
        let [tcp, tls, quic] = addrs[..] else { bail!("--inside wants TCP,TLS,QUIC addresses") };
        Ok(Targets { tcp, tls, quic })
    }

    fn text(&self) -> String {
        format!("{},{},{}", self.tcp, self.tls, self.quic)
    }
}

/// A finished run: the rows and the impairment actually applied ("none", "tc netem …", or the
/// nftables fallback on a kernel without netem).
pub struct Run {
    pub rows: Vec<Row>,
    pub impairment: String,
}

/// Starts a server (in a namespace under netem), measures all five transports, stops it.
pub fn run(plan: &Plan) -> Result<Run> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let data = std::env::temp_dir().join(format!("chinwag-transports-{}", std::process::id()));
    let result = match &plan.netem {
        None => {
            let targets = free_targets()?;
            let server = Server::start(&exe, &data, targets, None)?;
            let rows = runtime()?.block_on(measure(targets, plan));
            drop(server);
            rows.map(|rows| Run { rows, impairment: "none".into() })
        }
        Some(netem) => {
            let (ns, impairment) = Namespace::create(netem)?;
            // A fresh namespace has every port free.
            let targets = Targets::parse("127.0.0.1:6667,127.0.0.1:6697,127.0.0.1:6697")?;
            let server = Server::start(&exe, &data, targets, Some(&ns.name))?;
            let rows = measure_inside(&exe, &ns.name, targets, plan);
            drop(server);
            drop(ns);
            rows.map(|rows| Run { rows, impairment })
        }
    };
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// Runs the measuring part in the namespace and reads its JSON rows.
fn measure_inside(exe: &std::path::Path, ns: &str, targets: Targets, plan: &Plan) -> Result<Vec<Row>> {
    let output = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(["bench", "transports", "--inside", &targets.text()])
        .args(["--messages", &plan.messages.to_string(), "--in-flight", &plan.in_flight.to_string()])
        .args(["--duration", &plan.duration.as_secs().max(1).to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("running the bench inside the namespace")?;
    if !output.status.success() {
        bail!("the bench inside the namespace failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().context("the bench inside the namespace printed nothing")?;
    serde_json::from_str(line).context("reading the rows from inside the namespace")
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

/// Three loopback ports free right now (TCP, TCP, UDP).
fn free_targets() -> Result<Targets> {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
    let tls = std::net::TcpListener::bind("127.0.0.1:0")?;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(Targets { tcp: tcp.local_addr()?, tls: tls.local_addr()?, quic: udp.local_addr()? })
}

/// `chinwag serve` as a child process, killed on drop.
struct Server(Child);

impl Server {
    fn start(exe: &std::path::Path, data: &std::path::Path, t: Targets, ns: Option<&str>) -> Result<Server> {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.arg("serve").arg("--data-dir").arg(data).arg("--load-test");
        cmd.args(["--listen", &t.tcp.to_string(), "--tls-listen", &t.tls.to_string()]);
        cmd.args(["--quic-listen", &t.quic.to_string(), "--discovery", "off"]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        Ok(Server(cmd.spawn().context("starting chinwag serve")?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `ip netns exec` execs the server, so this is the server's own process.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A network namespace with netem on its loopback, deleted on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates the namespace and applies `netem`; returns it with what was actually applied.
    /// Kernels without the netem qdisc (some VMs) get the loss part from an nftables rule
    /// that drops that share of packets at random, and no delay; the report says so.
    fn create(netem: &str) -> Result<(Namespace, String)> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        remove_stale_namespaces();
        let name = format!("{NS_PREFIX}{}-{nanos}", std::process::id());
        ip(&["netns", "add", &name]).context("creating a network namespace (needs root and iproute2)")?;
        let ns = Namespace { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        let tc = Command::new("ip")
            .args(["netns", "exec", &ns.name, "tc", "qdisc", "add", "dev", "lo", "root", "netem"])
            .args(netem.split_whitespace())
            .stderr(Stdio::null())
            .status()
            .context("running tc (iproute2)")?;
        if tc.success() {
            return Ok((ns, format!("tc netem {netem}")));
        }
        let Some(percent) = loss_percent(netem) else {
            bail!("this kernel has no netem qdisc and {netem:?} asks for no loss that nftables could apply instead");
        };
        let per_mille = (percent * 10.0).round() as u32;
        for rule in [
            vec!["add", "table", "inet", "chinwag_bench"],
            vec!["add", "chain", "inet", "chinwag_bench", "out", "{ type filter hook output priority 0 ; }"],
            vec!["add", "rule", "inet", "chinwag_bench", "out", "numgen", "random", "mod", "1000", "<"],
        ] {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &ns.name, "nft"]).args(&rule);
            if rule.last() == Some(&"<") {
                cmd.args([per_mille.to_string().as_str(), "drop"]);
            }
            let status = cmd.status().context("running nft (nftables), the fallback for a kernel without netem")?;
            if !status.success() {
                bail!("nft {} failed ({status})", rule.join(" "));
            }
        }
        Ok((ns, format!("nftables random drop {percent}% (this kernel has no netem: no delay)")))
    }
}

/// Names of the bench's namespaces: the prefix, then the process id and a nonce.
const NS_PREFIX: &str = "chinwag-tr-";

/// Deletes namespaces left by a bench that was killed (Ctrl-C, SIGKILL) before its clean-up:
/// those whose process is gone.
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(NS_PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// The N of "loss N%" in netem settings.
fn loss_percent(netem: &str) -> Option<f64> {
    let words: Vec<&str> = netem.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "loss")?;
    words.get(at + 1)?.trim_end_matches('%').parse().ok()
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let status = Command::new("ip").args(args).status().context("running ip (iproute2)")?;
    if !status.success() {
        bail!("ip {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Measures all five transports one after the other, each within its share of the time.
pub async fn measure(targets: Targets, plan: &Plan) -> Result<Vec<Row>> {
    let share = plan.duration / 5;
    let mut rows = Vec::new();
    wait_listening(targets.tcp).await?;
    // The server's first registration is slower (a few hundred ms: lazy set-up on its side);
    // one throwaway registration keeps that out of the first row's set-up time.
    let warm_up = Link::open("tcp", targets, targets.tcp);
    tokio::time::timeout(STARTUP, warm_up).await.context("warming up: registration timed out")??;
    let echo = UdpSocket::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    let echo_task = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    for name in ["tcp", "tls", "quic-stream", "quic-datagram", "udp"] {
        let deadline = Instant::now() + share;
        let opening = Instant::now();
        let mut link = tokio::time::timeout_at(deadline.into(), Link::open(name, targets, echo_addr))
            .await
            .with_context(|| format!("{name}: connecting timed out"))?
            .with_context(|| format!("{name}: connecting"))?;
        let setup = opening.elapsed();
        let latency = phase(&mut link, plan.messages, 1, deadline - share / 2).await?;
        let burst = phase(&mut link, plan.messages, plan.in_flight.max(1), deadline).await?;
        rows.push(Row { setup_us: setup.as_micros() as u64, ..row(name, &latency, &burst) });
    }
    echo_task.abort();
    Ok(rows)
}

/// Waits until the server accepts TCP connections.
async fn wait_listening(addr: SocketAddr) -> Result<()> {
    let until = Instant::now() + STARTUP;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("the server did not listen on {addr} within {STARTUP:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Phase {
    rtts: Vec<Duration>,
    sent: u64,
    lost: u64,
    unanswered: u64,
    elapsed: Duration,
}

/// Sends `messages` probes with at most `window` unanswered and times each answer.
async fn phase(link: &mut Link, messages: u64, window: usize, deadline: Instant) -> Result<Phase> {
    let mut outstanding: BTreeMap<u64, Instant> = BTreeMap::new();
    let (mut rtts, mut lost, mut next) = (Vec::new(), 0, 0);
    let start = Instant::now();
    while (next < messages || !outstanding.is_empty()) && Instant::now() < deadline {
        while next < messages && outstanding.len() < window {
            link.send(next).await?;
            outstanding.insert(next, Instant::now());
            next += 1;
        }
        let oldest = outstanding.values().min().copied().unwrap_or_else(Instant::now);
        let slowest: Duration = rtts.iter().max().copied().unwrap_or_default();
        let give_up = (LOSS_TIMEOUT + 4 * slowest).min(MAX_LOSS_TIMEOUT);
        let wake = if link.lossy() { deadline.min(oldest + give_up) } else { deadline };
        match tokio::time::timeout_at(wake.into(), link.recv()).await {
            Ok(seq) => {
                // Late answers to probes already counted lost are ignored.
                if let Some(sent) = outstanding.remove(&seq?) {
                    rtts.push(sent.elapsed());
                }
            }
            // A stream loses nothing: what is outstanding at the deadline is unanswered.
            Err(_) if !link.lossy() => {}
            Err(_) => {
                let now = Instant::now();
                let before = outstanding.len();
                outstanding.retain(|_, sent| now.duration_since(*sent) < give_up);
                lost += (before - outstanding.len()) as u64;
            }
        }
    }
    Ok(Phase { rtts, sent: next, lost, unanswered: outstanding.len() as u64, elapsed: start.elapsed() })
}

fn row(name: &str, latency: &Phase, burst: &Phase) -> Row {
    let mut rtts = latency.rtts.clone();
    rtts.sort();
    let pick = |q: f64| -> u64 {
        if rtts.is_empty() {
            return 0;
        }
        let i = ((rtts.len() as f64 * q).ceil() as usize).clamp(1, rtts.len()) - 1;
        rtts[i].as_micros() as u64
    };
    let secs = burst.elapsed.as_secs_f64().max(1e-9);
    Row {
        transport: name.to_owned(),
        sent: latency.sent,
        received: latency.rtts.len() as u64,
        lost: latency.lost + burst.lost,
        unanswered: latency.unanswered + burst.unanswered,
        p50_us: pick(0.5),
        p90_us: pick(0.9),
        p99_us: pick(0.99),
        max_us: pick(1.0),
        per_sec: burst.rtts.len() as f64 / secs,
        setup_us: 0,
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One client connection of one transport, able to send probe `seq` and read answers.
enum Link {
    Stream {
        reader: BufReader<ReadHalf<Box<dyn Io>>>,
        writer: WriteHalf<Box<dyn Io>>,
        line: Vec<u8>,
    },
    /// The stream stays open (it holds the session); probes go in datagrams.
    Datagram {
        _stream: Box<Link>,
        connection: quinn::Connection,
        nick: String,
        _endpoint: quinn::Endpoint,
    },
    Udp(UdpSocket),
}

impl Link {
    async fn open(name: &str, t: Targets, echo: SocketAddr) -> Result<Link> {
        // Unique per link: the previous link's nick may not be released yet.
        static LINKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = LINKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nick = format!("b{}{}x{n}", name.replace('-', ""), std::process::id() % 10_000);
        let mut link = match name {
            "tcp" => Link::stream(Box::new(TcpStream::connect(t.tcp).await?)),
            "tls" => {
                let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(Vec::new())));
                let tcp = TcpStream::connect(t.tls).await?;
                Link::stream(Box::new(connector.connect(localhost(), tcp).await?))
            }
            "quic-stream" | "quic-datagram" => {
                let (stream, connection, endpoint) = quic(t.quic).await?;
                if name == "quic-stream" {
                    Link::stream(stream)
                } else {
                    let mut stream = Link::stream(stream);
                    stream.register(&nick).await?;
                    return Ok(Link::Datagram { _stream: Box::new(stream), connection, nick, _endpoint: endpoint });
                }
            }
            _ => {
                let socket = UdpSocket::bind("127.0.0.1:0").await?;
                socket.connect(echo).await?;
                return Ok(Link::Udp(socket));
            }
        };
        link.register(&nick).await?;
        Ok(link)
    }

    fn stream(io: Box<dyn Io>) -> Link {
        let (r, w) = tokio::io::split(io);
        Link::Stream { reader: BufReader::new(r), writer: w, line: Vec::new() }
    }

    /// Whether probes may be lost (and are then given up after a timeout).
    fn lossy(&self) -> bool {
        !matches!(self, Link::Stream { .. })
    }

    /// Registers with message-tags (for the datagram probes); done when a PING is answered.
    async fn register(&mut self, nick: &str) -> Result<()> {
        let Link::Stream { writer, .. } = self else { return Ok(()) };
        let hello =
            format!("CAP LS 302\r\nCAP REQ :message-tags\r\nCAP END\r\nNICK {nick}\r\nUSER {nick} 0 * :bench\r\n");
        writer.write_all(hello.as_bytes()).await?;
        self.send(u64::MAX).await?;
        while self.recv().await? != u64::MAX {}
        Ok(())
    }

    async fn send(&mut self, seq: u64) -> Result<()> {
        match self {
            Link::Stream { writer, .. } => {
                writer.write_all(format!("PING :{seq}\r\n").as_bytes()).await?;
                writer.flush().await?;
            }
            Link::Datagram { connection, nick, .. } => {
                let line = format!("@+typing=active;{SEQ_TAG}={seq} TAGMSG {nick}\r\n");
                connection.send_datagram(line.into_bytes().into())?;
            }
            Link::Udp(socket) => {
                // A packet dropped on the way out by the nftables fallback comes back as EPERM:
                // that is a loss like any other, counted when its answer does not arrive.
                match socket.send(&seq.to_be_bytes()).await {
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
                    sent => {
                        sent?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The sequence number of the next answer. Cancel-safe: a partial line stays buffered.
    async fn recv(&mut self) -> Result<u64> {
        loop {
            match self {
                Link::Stream { reader, line, .. } => {
                    if reader.read_until(b'\n', line).await? == 0 {
                        bail!("the server closed the connection");
                    }
                    if !line.ends_with(b"\n") {
                        continue;
                    }
                    let text = String::from_utf8_lossy(line).trim_end().to_owned();
                    line.clear();
                    let Ok(msg) = Message::parse(&text) else { continue };
                    if msg.command == "PONG" {
                        if let Some(seq) = msg.params.last().and_then(|p| p.parse().ok()) {
                            return Ok(seq);
                        }
                    }
                }
                Link::Datagram { connection, .. } => {
                    let datagram = connection.read_datagram().await?;
                    let text = String::from_utf8_lossy(&datagram);
                    let Ok(msg) = Message::parse(text.trim_end()) else { continue };
                    if let Some(seq) = msg.tag(SEQ_TAG).and_then(|s| s.parse().ok()) {
                        return Ok(seq);
                    }
                }
                Link::Udp(socket) => {
                    let mut buf = [0u8; 16];
                    let n = socket.recv(&mut buf).await?;
                    if let Ok(bytes) = <[u8; 8]>::try_from(&buf[..n]) {
                        return Ok(u64::from_be_bytes(bytes));
                    }
                }
            }
        }
    }
}

/// A QUIC connection speaking chinwag's ALPN, with its IRC stream.
async fn quic(addr: SocketAddr) -> Result<(Box<dyn Io>, quinn::Connection, quinn::Endpoint)> {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(vec![chinwag_server::QUIC_ALPN.to_vec()]))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = endpoint.connect(addr, "localhost")?.await?;
    let (send, recv) = connection.open_bi().await?;
    Ok((Box::new(tokio::io::join(recv, send)), connection, endpoint))
}

fn localhost() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").expect("a valid name")
}

/// TLS 1.3 that accepts the server's certificate unchecked: the bench only talks to the server
/// it started itself, on loopback (signatures are still verified).
fn client_tls(alpn: Vec<Vec<u8>>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 is supported")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(chinwag_bench::AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    config
}

/// The table printed after a run.
pub fn table(run: &Run) -> String {
    let (rows, impairment) = (&run.rows, &run.impairment);
    let mut out = format!("transports against chinwag serve on loopback; impairment: {impairment}\n");
    out += "transport       sent  recv  lost unans   p50 ms   p90 ms   p99 ms   max ms   round trips/s  setup ms\n";
    for r in rows {
        let ms = |us: u64| us as f64 / 1000.0;
        out += &format!(
            "{:<14} {:>5} {:>5} {:>5} {:>5} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>15.0} {:>9.3}\n",
            r.transport,
            r.sent,
            r.received,
            r.lost,
            r.unanswered,
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            ms(r.max_us),
            r.per_sec,
            ms(r.setup_us)
        );
    }
    out += "sent/recv/lost/unans(wered at the deadline): one-at-a-time probes; lost and unans: both phases.\n";
    out += "setup: connect, handshake and IRC registration, once per transport.\n";
    out += "udp: a raw UDP echo run by the bench itself (no IRC over raw UDP by design), the floor.\n";
    out
}

/// One JSON line: the run's settings and its rows.
pub fn json_line(run: &Run, plan: &Plan) -> String {
    serde_json::json!({
        "scenario": "transports",
        "netem": plan.netem,
        "impairment": run.impairment,
        "messages": plan.messages,
        "in_flight": plan.in_flight,
        "rows": run.rows,
    })
    .to_string()
}

/// A bar chart of p50 and p99 per transport.
pub fn write_svg(run: &Run, path: &PathBuf) -> Result<()> {
    let rows = &run.rows;
    let max = rows.iter().map(|r| r.p99_us).max().unwrap_or(1).max(1) as f64;
    let mut svg = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"300\" font-family=\"sans-serif\" font-size=\"12\">\n",
    );
    svg += &format!(
        "<text x=\"10\" y=\"18\">round-trip latency, p50 (dark) and p99 (light); impairment: {}</text>\n",
        run.impairment
    );
    for (i, r) in rows.iter().enumerate() {
        let x = 40.0 + i as f64 * 120.0;
        for (dx, us, colour) in [(0.0, r.p50_us, "#336"), (40.0, r.p99_us, "#99c")] {
            let h = 220.0 * us as f64 / max;
            svg += &format!(
                "<rect x=\"{:.0}\" y=\"{:.1}\" width=\"38\" height=\"{h:.1}\" fill=\"{colour}\"/>\n",
                x + dx,
                260.0 - h
            );
            svg += &format!("<text x=\"{:.0}\" y=\"{:.1}\">{:.2}</text>\n", x + dx, 255.0 - h, us as f64 / 1000.0);
        }
        svg += &format!("<text x=\"{x:.0}\" y=\"280\">{}</text>\n", r.transport);
    }
    svg += "<text x=\"10\" y=\"296\">milliseconds</text>\n</svg>\n";
    let mut file = std::fs::File::create(path)?;
    file.write_all(svg.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::loss_percent;

    #[test]
    fn reads_the_loss_out_of_netem_settings() {
        assert_eq!(loss_percent("delay 10ms loss 1%"), Some(1.0));
        assert_eq!(loss_percent("loss 2.5% 25%"), Some(2.5));
        assert_eq!(loss_percent("delay 10ms"), None);
        assert_eq!(loss_percent("loss"), None);
        assert_eq!(loss_percent("loss lots"), None);
    }
}
