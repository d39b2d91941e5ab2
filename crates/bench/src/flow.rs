//! The message scenarios: `fanout`, `pairs` and `history`.
//!
//! Each is a list of members ([`Plan`]): who joins which room, who sends to whom, and how many
//! deliveries each should see. Every member is one task that registers, joins, waits for the
//! start signal, then sends (if it is a sender) and receives until told to stop. Receivers
//! count deliveries, check that each sender's messages arrive in order and put the latency
//! (from the timestamp in the message) into an HDR histogram.
//!
//! Saturated senders keep a bounded window of messages "in flight": a message leaves the window
//! when its sender's *watcher* (a member that receives everything the sender sends: another
//! room member, the pair's partner, or the sender itself via echo-message) has received it. So
//! the load is as high as the server can take and no queue grows without bound. With `--rate`
//! senders instead send on a fixed schedule (open loop).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::procfs::{CpuMeter, WatchMeter};
use crate::report::{Latency, Report};
use crate::stall::{merged_us, overlaps, StallMeter};
use crate::wire::{Conn, Dialer, Line, Payload};
use crate::{BenchError, Options, Scenario};

/// Connections being set up at once.
pub(crate) const SETUP_IN_FLIGHT: usize = 64;
/// Time one registration or JOIN may take during set-up.
pub(crate) const SETUP_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the progress bar and the throughput timeline are sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// A run in which nothing is delivered for this long is over: what is missing is lost.
const STALL: Duration = Duration::from_secs(5);
/// Most messages a saturated sender writes in one go.
const SEND_BATCH: u64 = 256;
/// Latencies above this (µs) are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;
/// A fixed-rate run expecting at most this many deliveries keeps each one's send time and
/// latency (16 bytes each), to leave out those in flight during a machine stall afterwards.
const MAX_FLIGHTS: u64 = 20_000_000;

/// One member of a message scenario.
#[derive(Clone, Debug)]
struct Plan {
    nick: String,
    /// Index of the target this member connects to.
    target: usize,
    /// Room to join first, if any.
    room: Option<String>,
    /// Capabilities to request (`echo-message` for history).
    caps: &'static str,
    /// Where this member sends, and its sender number, if it sends.
    sends: Option<(String, u32)>,
    /// Deliveries this member should receive.
    expect: u64,
}

/// A sender's window: how far its watcher has received, and a wake-up for the sender.
#[derive(Debug, Default)]
struct Ack {
    received: AtomicU64,
    notify: Notify,
}

/// What all members share.
#[derive(Debug)]
struct Shared {
    /// Time zero for the timestamps in messages.
    base: Instant,
    dialer: Dialer,
    setup: Semaphore,
    /// Per sender number.
    acks: Vec<Ack>,
    /// Per sender number: the member index that acknowledges it.
    watcher: Vec<usize>,
    messages: u64,
    in_flight: u64,
    /// Seconds between two messages of one sender, when the rate is fixed.
    interval: Option<Duration>,
    /// Whether members keep every delivery's flight (see [`MAX_FLIGHTS`]).
    keep_flights: bool,
    senders: usize,
    ready: AtomicUsize,
    done: AtomicUsize,
    /// Woken whenever `ready` or `done` grows or a set-up fails.
    changed: Notify,
    setup_error: Mutex<Option<String>>,
    delivered: AtomicU64,
    /// Every delivery's latency. One histogram for all members: one per member (216 KiB each
    /// at this range and precision) made each record a cache and TLB miss, a fifth of the
    /// generator's time with 1000 members, which widened every server's latency spread.
    latency: Mutex<Histogram<u64>>,
    go: CancellationToken,
    stop: CancellationToken,
}

/// What one member saw.
#[derive(Debug)]
struct Outcome {
    sent: u64,
    delivered: u64,
    reordered: u64,
    /// Each delivery's send time (µs since `base`) and latency (µs), when kept.
    flights: Vec<(u64, u32)>,
    /// When its last delivery arrived, in µs since `base`.
    last_us: u64,
    error: Option<String>,
}

pub(crate) async fn run(opts: &Options) -> Result<Report, BenchError> {
    let plans = plan(opts);
    let senders = plans.iter().filter(|p| p.sends.is_some()).count();
    let watcher = watchers(opts.scenario, &plans);
    let expected: u64 = plans.iter().map(|p| p.expect).sum();
    let interval = opts.rate.map(|r| Duration::from_secs_f64(senders as f64 / r as f64));
    let shared = Arc::new(Shared {
        base: Instant::now(),
        dialer: Dialer::new(&opts.targets, opts.tls),
        setup: Semaphore::new(SETUP_IN_FLIGHT),
        acks: (0..senders).map(|_| Ack::default()).collect(),
        watcher,
        messages: opts.messages,
        in_flight: opts.in_flight as u64,
        interval,
        keep_flights: interval.is_some() && expected <= MAX_FLIGHTS,
        senders,
        ready: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        changed: Notify::new(),
        setup_error: Mutex::new(None),
        delivered: AtomicU64::new(0),
        latency: Mutex::new(new_histogram()),
        go: CancellationToken::new(),
        stop: CancellationToken::new(),
    });
    let deadline = tokio::time::Instant::now() + opts.duration;
    let n = plans.len();
    let tasks: Vec<_> =
        plans.into_iter().enumerate().map(|(i, p)| tokio::spawn(member(i, p, Arc::clone(&shared)))).collect();

    let mut report = Report::new(opts);
    match opts.scenario {
        Scenario::Fanout => report.members = Some(n),
        Scenario::Pairs => report.members = Some(n),
        _ => {}
    }
    report.spread(opts, n);
    report.senders = Some(senders);
    report.messages = Some(opts.messages);
    report.rate = opts.rate;

    // Set-up: every member registered and joined, or the first failure.
    let setup = crate::progress::Progress::new(opts.progress, n as u64, "set-up");
    loop {
        let ready = shared.ready.load(Ordering::Acquire);
        setup.set(ready as u64);
        if let Some(e) = lock(&shared.setup_error).clone() {
            shared.stop.cancel();
            return Err(BenchError::Member(e));
        }
        if ready == n {
            break;
        }
        if tokio::time::timeout_at(deadline, shared.changed.notified()).await.is_err() {
            shared.stop.cancel();
            return Err(BenchError::SetupTimeout(ready, n));
        }
    }
    setup.finish();

    // The measured phase.
    let progress = crate::progress::Progress::new(opts.progress, expected, "deliveries");
    let cpu = CpuMeter::start(&opts.server_pids);
    let watched = WatchMeter::start(&opts.watched);
    let stalls = StallMeter::start(deadline.into_std());
    let go_us = shared.base.elapsed().as_micros() as u64;
    shared.go.cancel();
    let mut last_sample = (Instant::now(), 0u64);
    let mut last_progress = Instant::now();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = tick.tick() => {
                let delivered = shared.delivered.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (delivered - last_sample.1) as f64 / now.duration_since(last_sample.0).as_secs_f64();
                let at = (shared.base.elapsed().as_micros() as u64).saturating_sub(go_us) as f64 / 1e6;
                report.timeline.push((at, rate));
                if delivered != last_sample.1 {
                    last_progress = now;
                }
                last_sample = (now, delivered);
                progress.set(delivered);
            }
        }
        if shared.done.load(Ordering::Acquire) == n {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            report.timed_out = true;
            break;
        }
        if last_progress.elapsed() >= STALL {
            report.note_error(format!("nothing was delivered for {STALL:?}; the rest counts as lost"));
            break;
        }
    }
    let server_cpu = cpu.elapsed();
    report.watched_cpu_s = watched.elapsed();
    let stalls = stalls.stop();
    report.machine_stalls = stalls.cores;
    let stalled = merged_us(&stalls.windows, shared.base);
    progress.finish();
    shared.stop.cancel();

    // Deliveries that were not in flight during a machine stall (fixed-rate runs only).
    let mut quiet = shared.keep_flights.then(new_histogram);
    let (mut sent, mut delivered, mut reordered, mut last_us) = (0, 0, 0, go_us);
    for task in tasks {
        match task.await {
            Ok(o) => {
                sent += o.sent;
                delivered += o.delivered;
                reordered += o.reordered;
                last_us = last_us.max(o.last_us);
                if let Some(q) = &mut quiet {
                    for &(sent_us, us) in &o.flights {
                        if !overlaps(&stalled, sent_us, sent_us + u64::from(us)) {
                            let _ = q.record(u64::from(us));
                        }
                    }
                }
                if let Some(e) = o.error {
                    report.note_error(e);
                }
            }
            Err(e) => report.note_error(format!("a member task failed: {e}")),
        }
    }
    let latency = std::mem::replace(&mut *lock(&shared.latency), new_histogram());
    let elapsed = Duration::from_micros(last_us.saturating_sub(go_us)).max(Duration::from_micros(1));
    report.elapsed_s = elapsed.as_secs_f64();
    report.sent = Some(sent);
    report.expected = Some(expected);
    report.delivered = Some(delivered);
    report.lost = Some(expected.saturating_sub(delivered));
    report.reordered = Some(reordered);
    report.deliveries_per_s = Some(delivered as f64 / elapsed.as_secs_f64());
    if let Some(cpu) = server_cpu {
        report.server_cpu_s = Some(cpu.as_secs_f64());
        report.deliveries_per_cpu_s = (cpu > Duration::ZERO).then(|| delivered as f64 / cpu.as_secs_f64());
    }
    report.latency_us = Latency::of(&latency);
    if let Some(q) = quiet {
        report.quiet_share = Some(q.len() as f64 / latency.len().max(1) as f64);
        report.latency_quiet_us = Latency::of(&q);
    }
    report.histogram = Some(latency);
    Ok(report)
}

/// The members of a scenario. Nicks and rooms carry a per-run tag so that runs against one
/// server do not collide; nicks stay within 9 characters (the oldest servers' limit).
fn plan(opts: &Options) -> Vec<Plan> {
    let tag = run_tag();
    let nick = |i: usize| format!("b{tag}{}", base36(i));
    let m = opts.messages;
    match opts.scenario {
        Scenario::Pairs => {
            let pairs = opts.members / 2;
            (0..pairs * 2)
                .map(|i| Plan {
                    nick: nick(i),
                    target: opts.target_of(i),
                    room: None,
                    caps: "",
                    sends: Some((nick(i ^ 1), i as u32)),
                    expect: m,
                })
                .collect()
        }
        Scenario::History => (0..opts.senders)
            .map(|i| {
                let room = format!("#h{tag}-{i}");
                Plan {
                    nick: nick(i),
                    target: opts.target_of(i),
                    room: Some(room.clone()),
                    caps: "echo-message",
                    sends: Some((room, i as u32)),
                    expect: m,
                }
            })
            .collect(),
        _ => {
            let room = format!("#bench-{tag}");
            let s = opts.senders;
            (0..opts.members)
                .map(|i| Plan {
                    nick: nick(i),
                    target: opts.target_of(i),
                    room: Some(room.clone()),
                    caps: "",
                    sends: (i < s).then(|| (room.clone(), i as u32)),
                    expect: if i < s { (s as u64 - 1) * m } else { s as u64 * m },
                })
                .collect()
        }
    }
}

/// For each sender, the member that acknowledges its messages (see the module doc). In a room
/// with members on several targets it is the last member on another target than the sender's,
/// so that the window measures the path across nodes.
fn watchers(scenario: Scenario, plans: &[Plan]) -> Vec<usize> {
    let senders = plans.iter().filter(|p| p.sends.is_some()).count();
    (0..senders)
        .map(|s| match scenario {
            Scenario::Pairs => s ^ 1,
            Scenario::History => s,
            _ => match plans.iter().rposition(|p| p.target != plans[s].target) {
                Some(other) => other,
                None if s + 1 == plans.len() => 0,
                None => plans.len() - 1,
            },
        })
        .collect()
}

/// Two base-36 characters that differ between runs started at different times.
pub(crate) fn run_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = (nanos / 1000) as usize ^ std::process::id() as usize;
    let s = base36(n % (36 * 36) + 36 * 36);
    s[1..].to_owned()
}

pub(crate) fn base36(mut n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_LATENCY_US, 3) {
        Ok(h) => h,
        Err(e) => unreachable!("fixed histogram bounds are valid: {e}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One member, from connecting to the stop signal.
async fn member(index: usize, plan: Plan, shared: Arc<Shared>) -> Outcome {
    let mut out = Outcome { sent: 0, delivered: 0, reordered: 0, flights: Vec::new(), last_us: 0, error: None };
    let conn = tokio::select! {
        _ = shared.stop.cancelled() => return out,
        conn = set_up(&plan, &shared) => conn,
    };
    let mut conn = match conn {
        Ok(conn) => conn,
        Err(e) => {
            lock(&shared.setup_error).get_or_insert_with(|| format!("{}: {e}", plan.nick));
            shared.changed.notify_one();
            return out;
        }
    };
    shared.ready.fetch_add(1, Ordering::AcqRel);
    shared.changed.notify_one();
    if let Err(e) = exchange(index, &plan, &shared, &mut conn, &mut out).await {
        out.error = Some(format!("{}: {e}", plan.nick));
        // A broken member will not receive the rest; it must not hold up the others.
        if !shared.stop.is_cancelled() {
            shared.done.fetch_add(1, Ordering::AcqRel);
            shared.changed.notify_one();
        }
    }
    out
}

async fn set_up(plan: &Plan, shared: &Shared) -> Result<Conn, BenchError> {
    let _permit = shared.setup.acquire().await;
    let mut conn = Conn::new(shared.dialer.dial(plan.target).await?);
    conn.register(&plan.nick, plan.caps, SETUP_STEP_TIMEOUT).await?;
    if let Some(room) = &plan.room {
        conn.join(room, SETUP_STEP_TIMEOUT).await?;
    }
    Ok(conn)
}

/// Waits for the start, then sends and receives until stopped.
async fn exchange(
    index: usize,
    plan: &Plan,
    shared: &Shared,
    conn: &mut Conn,
    out: &mut Outcome,
) -> Result<(), std::io::Error> {
    // Before the start: keep reading (other members' JOINs) and answering PINGs. What is read
    // here is dropped, so the start must win over a read that is ready at the same time: a
    // partner's first messages can arrive before this task sees the start, and an unbiased
    // select dropped them now and then (a pair reported all its messages lost).
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return Ok(()),
            _ = shared.go.cancelled() => break,
            read = conn.read_some() => if !read? { return Err(closed()) },
        }
        conn.lines(|_, _| {});
        conn.flush().await?;
    }
    let mut last_seq: HashMap<u32, u64> = HashMap::new();
    let sender = plan.sends.as_ref();
    let mut next_at = shared.interval.map(|every| {
        // Spread senders across one interval so that they do not all send at the same instant.
        let phase = sender.map_or(0.0, |(_, s)| f64::from(*s) / shared.senders as f64);
        tokio::time::Instant::now() + every.mul_f64(phase)
    });
    let mut finished = plan.expect == 0 && sender.is_none();
    if finished {
        shared.done.fetch_add(1, Ordering::AcqRel);
        shared.changed.notify_one();
    }
    loop {
        let more_to_send = sender.is_some() && out.sent < shared.messages;
        let ack = sender.map(|(_, s)| &shared.acks[*s as usize]);
        let window_open =
            ack.is_some_and(|a| out.sent.saturating_sub(a.received.load(Ordering::Acquire)) < shared.in_flight);
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return Ok(()),
            read = conn.read_some() => {
                if !read? {
                    return Err(closed());
                }
                let now_us = shared.base.elapsed().as_micros() as u64;
                let mut got = 0;
                let mut histogram = lock(&shared.latency);
                conn.lines(|line, _| {
                    let Line::Payload(p) = line else { return };
                    got += 1;
                    let last = last_seq.entry(p.sender).or_insert(0);
                    if p.seq < *last {
                        out.reordered += 1;
                    }
                    *last = p.seq + 1;
                    let latency = now_us.saturating_sub(p.sent_us).clamp(1, MAX_LATENCY_US);
                    let _ = histogram.record(latency);
                    if shared.keep_flights {
                        out.flights.push((p.sent_us, latency as u32));
                    }
                    if shared.watcher.get(p.sender as usize) == Some(&index) {
                        if let Some(a) = shared.acks.get(p.sender as usize) {
                            a.received.fetch_max(p.seq + 1, Ordering::AcqRel);
                            a.notify.notify_one();
                        }
                    }
                });
                drop(histogram);
                if got > 0 {
                    out.delivered += got;
                    out.last_us = now_us;
                    shared.delivered.fetch_add(got, Ordering::Relaxed);
                }
            }
            _ = wait_for(ack), if more_to_send && next_at.is_none() && !window_open => {}
            _ = std::future::ready(()), if more_to_send && next_at.is_none() && window_open => {
                if let (Some((target, s)), Some(a)) = (sender, ack) {
                    let room = shared.in_flight.saturating_sub(out.sent.saturating_sub(a.received.load(Ordering::Acquire)));
                    let batch = room.min(SEND_BATCH).min(shared.messages - out.sent);
                    write_messages(conn, target, *s, out.sent, batch, shared.base.elapsed().as_micros() as u64);
                    out.sent += batch;
                }
            }
            _ = sleep_until(next_at), if more_to_send && next_at.is_some() => {
                if let (Some((target, s)), Some(every), Some(mut at)) = (sender, shared.interval, next_at) {
                    // Everything due by now goes out in one write (a late wake-up catches up).
                    let now = tokio::time::Instant::now();
                    let mut due = 0;
                    while at <= now && out.sent + due < shared.messages {
                        due += 1;
                        at += every;
                    }
                    next_at = Some(at);
                    write_messages(conn, target, *s, out.sent, due, shared.base.elapsed().as_micros() as u64);
                    out.sent += due;
                }
            }
        }
        conn.flush().await?;
        if !finished && out.delivered >= plan.expect && (sender.is_none() || out.sent >= shared.messages) {
            finished = true;
            shared.done.fetch_add(1, Ordering::AcqRel);
            shared.changed.notify_one();
        }
    }
}

fn write_messages(conn: &mut Conn, target: &str, sender: u32, first: u64, count: u64, now_us: u64) {
    for seq in first..first + count {
        Payload { sender, seq, sent_us: now_us }.write_privmsg(target, &mut conn.out);
    }
}

/// Resolves when the sender's watcher received more; never for a member that does not send.
async fn wait_for(ack: Option<&Ack>) {
    match ack {
        Some(a) => a.notify.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection")
}
