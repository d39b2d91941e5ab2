//! The machine's own stalls during a run, so that a latency can be read against them.
//!
//! On a virtual machine a core can stop for tens of milliseconds at a time while the host runs
//! something else. Every message in flight through that core then waits, and so does the
//! backlog that builds up behind it, whatever the server: at 50,000 messages per second, one
//! 20 ms stall a second is enough to set the p99 of every server. A latency result means little
//! without knowing how often that happened during the run.
//!
//! The meter is one thread per core of the machine (the server's core too, not only the load
//! generator's), each pinned to its core, sleeping [`TICK`] at a time and noting how much later
//! than asked it woke up (the idea of jHiccup). A busy core delays it too, by up to a scheduler
//! slice; what it reports as a stall is a wake-up at least [`STALL`] late, longer than that.
//! Its cost is a wake-up per millisecond per core. The threads stop when the run ends, or at
//! the run's deadline at the latest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::thread::{sched_setaffinity, CpuSet};
use serde::Serialize;

/// How long the meter sleeps at a time.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// A wake-up at least this late counts as a stall of the machine.
pub(crate) const STALL: Duration = Duration::from_millis(5);

/// Most cores watched (one thread each).
const MAX_CORES: usize = 64;

/// Most stall windows one core's thread keeps (a run with more has no quiet latency to speak of).
const MAX_WINDOWS: usize = 100_000;

/// When a core was stopped: from the wake-up that was due to the one that came.
pub(crate) type Window = (Instant, Instant);

/// What one meter thread saw: its summary and its stall windows.
type Watched = (Stalls, Vec<Window>);

/// What the meter saw on one core over the measured phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stalls {
    /// The core, or `None` when the machine's cores could not be read and one meter watched
    /// wherever it ran.
    pub cpu: Option<usize>,
    /// Wake-ups at least [`STALL`] late.
    pub count: u64,
    /// Their lateness added up, in milliseconds.
    pub total_ms: f64,
    /// The latest wake-up, in milliseconds late (stall or not).
    pub longest_ms: f64,
    /// How long the meter ran, in seconds.
    pub measured_s: f64,
}

impl Stalls {
    /// Adds one wake-up that came `late` after it was due.
    fn record(&mut self, late: Duration) {
        let ms = late.as_secs_f64() * 1e3;
        self.longest_ms = self.longest_ms.max(ms);
        if late >= STALL {
            self.count += 1;
            self.total_ms += ms;
        }
    }
}

/// The running meter; [`StallMeter::stop`] ends it and reports.
pub(crate) struct StallMeter {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Option<Watched>>>,
}

/// What the meter saw: each core's summary, and every stall window of every core.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub cores: Vec<Stalls>,
    pub windows: Vec<Window>,
}

impl StallMeter {
    /// Starts a meter on every online core (or one unpinned meter if the cores cannot be
    /// read), which runs until stopped or until `deadline`. A meter thread that cannot be
    /// started, or cannot run on its core (a container's cpuset), is left out; the run goes on
    /// without it.
    pub(crate) fn start(deadline: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::fs::read_to_string("/sys/devices/system/cpu/online").ok().and_then(|s| parse_cpu_list(&s));
        let cores: Vec<Option<usize>> = match cores {
            Some(list) if !list.is_empty() => list.into_iter().take(MAX_CORES).map(Some).collect(),
            _ => vec![None],
        };
        let threads = cores
            .into_iter()
            .filter_map(|cpu| {
                let flag = Arc::clone(&stop);
                std::thread::Builder::new().name("stall-meter".into()).spawn(move || watch(cpu, &flag, deadline)).ok()
            })
            .collect();
        StallMeter { stop, threads }
    }

    /// Stops the meter and reports what each core's thread saw.
    pub(crate) fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Seen::default();
        for (stalls, windows) in self.threads.drain(..).filter_map(|t| t.join().ok().flatten()) {
            seen.cores.push(stalls);
            seen.windows.extend(windows);
        }
        seen
    }
}

impl Drop for StallMeter {
    /// A meter dropped without `stop` (a run that failed) still ends its threads.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One meter thread: pins itself to `cpu` and sleeps a tick at a time; `None` at once if it
/// cannot run there (watching some other core instead would count that core twice).
fn watch(cpu: Option<usize>, stop: &AtomicBool, deadline: Instant) -> Option<Watched> {
    if let Some(c) = cpu {
        let mut set = CpuSet::new();
        set.set(c);
        sched_setaffinity(None, &set).ok()?;
    }
    let started = Instant::now();
    let mut stalls = Stalls { cpu, ..Stalls::default() };
    let mut windows = Vec::new();
    let mut due = started + TICK;
    while !stop.load(Ordering::Relaxed) && due < deadline {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let woke = Instant::now();
        let late = woke.saturating_duration_since(due);
        stalls.record(late);
        if late >= STALL && windows.len() < MAX_WINDOWS {
            windows.push((due, woke));
        }
        due = woke + TICK;
    }
    stalls.measured_s = started.elapsed().as_secs_f64();
    Some((stalls, windows))
}

/// Stall windows as sorted, merged `[start, end]` ranges of microseconds since `base`.
pub(crate) fn merged_us(windows: &[Window], base: Instant) -> Vec<(u64, u64)> {
    let us = |t: Instant| t.saturating_duration_since(base).as_micros() as u64;
    let mut ranges: Vec<(u64, u64)> = windows.iter().map(|&(a, b)| (us(a), us(b))).collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// Whether `[from, to]` (µs) overlaps any of the sorted, merged `ranges`.
pub(crate) fn overlaps(ranges: &[(u64, u64)], from: u64, to: u64) -> bool {
    // The first range that ends at or after `from` is the only one that can overlap first.
    let i = ranges.partition_point(|&(_, end)| end < from);
    ranges.get(i).is_some_and(|&(start, _)| start <= to)
}

/// The kernel's CPU list format ("0-3,8,10-11"); `None` if it does not parse.
fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi): (usize, usize) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
            None => {
                let c = part.parse().ok()?;
                (c, c)
            }
        };
        if hi < lo || hi >= CpuSet::MAX_CPU {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-4,7"), Some(vec![0, 2, 3, 4, 7]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn watches_every_online_core() {
        let meter = StallMeter::start(Instant::now() + Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
        let cores = meter.stop().cores;
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok().and_then(|s| parse_cpu_list(&s));
        let want: Vec<Option<usize>> = online.expect("Linux lists its cores").into_iter().map(Some).collect();
        assert_eq!(cores.iter().map(|s| s.cpu).collect::<Vec<_>>(), want);
    }

    #[test]
    fn merges_windows_and_finds_what_overlaps_them() {
        let base = Instant::now();
        let at = |us: u64| base + Duration::from_micros(us);
        // Two cores' windows, overlapping in the middle, and one apart.
        let windows = [(at(5_000), at(12_000)), (at(40_000), at(45_000)), (at(10_000), at(20_000))];
        let ranges = merged_us(&windows, base);
        assert_eq!(ranges, [(5_000, 20_000), (40_000, 45_000)]);
        assert!(!overlaps(&ranges, 0, 4_999), "ended before the first");
        assert!(overlaps(&ranges, 0, 5_000), "touches its start");
        assert!(overlaps(&ranges, 6_000, 7_000), "inside");
        assert!(overlaps(&ranges, 19_000, 30_000), "straddles its end");
        assert!(!overlaps(&ranges, 20_001, 39_999), "between the two");
        assert!(overlaps(&ranges, 30_000, 50_000), "covers the second");
        assert!(!overlaps(&ranges, 45_001, 90_000), "after the last");
        assert!(!overlaps(&[], 0, u64::MAX));
    }

    #[test]
    fn counts_only_wake_ups_later_than_the_threshold() {
        let mut s = Stalls::default();
        s.record(Duration::from_micros(300));
        s.record(Duration::from_millis(4));
        assert_eq!((s.count, s.total_ms), (0, 0.0));
        s.record(Duration::from_millis(5));
        s.record(Duration::from_millis(20));
        assert_eq!(s.count, 2);
        assert!((s.total_ms - 25.0).abs() < 1e-9);
        assert!((s.longest_ms - 20.0).abs() < 1e-9);
    }

    #[test]
    fn sees_the_process_stopped() {
        // The whole process is stopped for 100 ms, as a paused virtual machine would be.
        let meter = StallMeter::start(Instant::now() + Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
        let pid = std::process::id();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -STOP {pid}; sleep 0.1; kill -CONT {pid}"))
            .status()
            .expect("sh runs");
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(20));
        let seen = meter.stop();
        assert!(!seen.cores.is_empty());
        for s in &seen.cores {
            assert!(s.count >= 1 && s.longest_ms >= 80.0 && s.total_ms >= 80.0, "{s:?}");
            assert!(s.measured_s >= 0.1 && s.measured_s < 5.0, "{s:?}");
        }
        // Every core saw the stop as one window of about 100 ms.
        let long: Vec<_> = seen.windows.iter().filter(|(a, b)| *b - *a >= Duration::from_millis(80)).collect();
        assert_eq!(long.len(), seen.cores.len(), "{:?}", seen.windows);
    }

    #[test]
    fn stops_by_itself_at_the_deadline() {
        let meter = StallMeter::start(Instant::now() + Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(200));
        // The threads have already ended; stop only collects them.
        for s in meter.stop().cores {
            assert!(s.measured_s < 0.15, "{s:?}");
        }
    }
}
