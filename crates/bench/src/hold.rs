//! The connection scenarios: `connect` (how fast and how cheaply the server registers
//! clients) and `idle` (what holding registered clients costs it in memory).
//!
//! Both open `connections` connections, `in_flight` at a time, register each (NICK/USER, wait
//! for 001) and keep all of them open until the end, answering PINGs, so that the server holds
//! every one of them at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::flow::{base36, run_tag, SAMPLE_EVERY, SETUP_STEP_TIMEOUT};
use crate::procfs::{total_rss_kib, CpuMeter, WatchMeter};
use crate::progress::Progress;
use crate::report::{Latency, Report};
use crate::stall::StallMeter;
use crate::wire::{Conn, Dialer};
use crate::{BenchError, Options};

/// Read buffer of a held connection: it only sees PINGs.
const IDLE_BUFFER: usize = 1024;

#[derive(Debug)]
struct Shared {
    dialer: Dialer,
    limit: Semaphore,
    registered: AtomicUsize,
    failed: AtomicUsize,
    changed: Notify,
    errors: Mutex<Vec<String>>,
    stop: CancellationToken,
}

/// What a batch of connections did.
struct Opened {
    report: Report,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<Option<u64>>>,
}

/// `connect`: registrations per second, registration latency and server CPU for them.
pub(crate) async fn connect(opts: &Options) -> Result<Report, BenchError> {
    let opened = open_all(opts).await;
    finish(opened).await
}

/// `idle`: the server's resident memory before and after holding the connections.
pub(crate) async fn idle(opts: &Options) -> Result<Report, BenchError> {
    let before = total_rss_kib(&opts.server_pids);
    let mut opened = open_all(opts).await;
    // Let the server settle (allocator caches, timers) with every connection open.
    tokio::select! {
        _ = tokio::time::sleep(opts.hold) => {}
        _ = opened.shared.stop.cancelled() => {}
    }
    let after = total_rss_kib(&opts.server_pids);
    let held = opened.shared.registered.load(Ordering::Acquire);
    opened.report.rss_before_kib = before;
    opened.report.rss_after_kib = after;
    if let (Some(b), Some(a)) = (before, after) {
        if held > 0 {
            opened.report.rss_per_conn_bytes = Some((a as f64 - b as f64) * 1024.0 / held as f64);
        }
    }
    finish(opened).await
}

async fn open_all(opts: &Options) -> Opened {
    let n = opts.connections;
    let shared = Arc::new(Shared {
        dialer: Dialer::new(&opts.targets, opts.tls),
        limit: Semaphore::new(opts.in_flight),
        registered: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        changed: Notify::new(),
        errors: Mutex::new(Vec::new()),
        stop: CancellationToken::new(),
    });
    let deadline = tokio::time::Instant::now() + opts.duration;
    let mut report = Report::new(opts);
    report.connections = Some(n);
    report.spread(opts, n);
    let progress = Progress::new(opts.progress, n as u64, "registered");
    let cpu = CpuMeter::start(&opts.server_pids);
    let watched = WatchMeter::start(&opts.watched);
    let stalls = StallMeter::start(deadline.into_std());
    let start = Instant::now();
    let tag = run_tag();
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(hold_one(format!("c{tag}{}", base36(i)), opts.target_of(i), Arc::clone(&shared))))
        .collect();
    let mut last_done = start;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut last_sample = (start, 0usize);
    loop {
        let registered = shared.registered.load(Ordering::Acquire);
        let done = registered + shared.failed.load(Ordering::Acquire);
        if done > last_sample.1 {
            last_done = Instant::now();
        }
        progress.set(registered as u64);
        if done == n {
            break;
        }
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = tick.tick() => {
                let now = Instant::now();
                let rate = (registered - last_sample.1.min(registered)) as f64 / now.duration_since(last_sample.0).as_secs_f64();
                report.timeline.push((start.elapsed().as_secs_f64(), rate));
                last_sample = (now, registered);
            }
            _ = tokio::time::sleep_until(deadline) => {
                report.timed_out = true;
                break;
            }
        }
    }
    progress.finish();
    let server_cpu = cpu.elapsed();
    report.watched_cpu_s = watched.elapsed();
    report.machine_stalls = stalls.stop().cores;
    let registered = shared.registered.load(Ordering::Acquire);
    let elapsed = last_done.duration_since(start).max(Duration::from_micros(1));
    report.elapsed_s = elapsed.as_secs_f64();
    report.registered = Some(registered);
    report.failed = Some(n - registered);
    report.registrations_per_s = Some(registered as f64 / elapsed.as_secs_f64());
    report.server_cpu_s = server_cpu.map(|c| c.as_secs_f64());
    Opened { report, shared, tasks }
}

/// Closes every connection and gathers the registration latencies.
async fn finish(mut opened: Opened) -> Result<Report, BenchError> {
    opened.shared.stop.cancel();
    let mut latency = match Histogram::<u64>::new_with_bounds(1, 60_000_000, 3) {
        Ok(h) => h,
        Err(e) => unreachable!("fixed histogram bounds are valid: {e}"),
    };
    for task in opened.tasks {
        if let Ok(Some(us)) = task.await {
            let _ = latency.record(us.clamp(1, 60_000_000));
        }
    }
    let errors = std::mem::take(&mut *opened.shared.errors.lock().unwrap_or_else(|p| p.into_inner()));
    for e in errors {
        opened.report.note_error(e);
    }
    opened.report.latency_us = Latency::of(&latency);
    opened.report.histogram = Some(latency);
    Ok(opened.report)
}

/// Opens and registers one connection, then holds it until stopped. Returns how long the
/// registration took (connect to 001), in µs, if it succeeded.
async fn hold_one(nick: String, target: usize, shared: Arc<Shared>) -> Option<u64> {
    let opened = async {
        let _permit = shared.limit.acquire().await;
        let started = Instant::now();
        let mut conn = Conn::new(shared.dialer.dial(target).await?);
        conn.register(&nick, "", SETUP_STEP_TIMEOUT).await?;
        Ok::<_, BenchError>((conn, started.elapsed().as_micros() as u64))
    };
    let (mut conn, took) = tokio::select! {
        _ = shared.stop.cancelled() => return None,
        opened = opened => match opened {
            Ok(opened) => opened,
            Err(e) => {
                let mut errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner());
                if errors.len() < crate::report::MAX_ERRORS {
                    errors.push(e.to_string());
                }
                drop(errors);
                shared.failed.fetch_add(1, Ordering::AcqRel);
                shared.changed.notify_one();
                return None;
            }
        },
    };
    shared.registered.fetch_add(1, Ordering::AcqRel);
    shared.changed.notify_one();
    conn.set_buffer(IDLE_BUFFER);
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            read = conn.read_some() => match read {
                Ok(true) => {
                    conn.lines(|_, _| {});
                    if conn.flush().await.is_err() {
                        break;
                    }
                }
                Ok(false) | Err(_) => break,
            },
        }
    }
    Some(took)
}
