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

/// What the meter saw on one core over the measured phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stalls {
    /// The core, or `None` when the meter could not pin itself and watched wherever it ran.
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
    threads: Vec<JoinHandle<Stalls>>,
}

impl StallMeter {
    /// Starts a meter on every online core (or one unpinned meter if the cores cannot be
    /// read), which runs until stopped or until `deadline`. A meter thread that cannot be
    /// started is left out; the run goes on without it.
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
    pub(crate) fn stop(mut self) -> Vec<Stalls> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.drain(..).filter_map(|t| t.join().ok()).collect()
    }
}

impl Drop for StallMeter {
    /// A meter dropped without `stop` (a run that failed) still ends its threads.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One meter thread: pins itself to `cpu` (if it can) and sleeps a tick at a time.
fn watch(cpu: Option<usize>, stop: &AtomicBool, deadline: Instant) -> Stalls {
    let pinned = cpu.filter(|&c| {
        let mut set = CpuSet::new();
        set.set(c);
        sched_setaffinity(None, &set).is_ok()
    });
    let started = Instant::now();
    let mut stalls = Stalls { cpu: pinned, ..Stalls::default() };
    let mut due = started + TICK;
    while !stop.load(Ordering::Relaxed) && due < deadline {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let woke = Instant::now();
        stalls.record(woke.saturating_duration_since(due));
        due = woke + TICK;
    }
    stalls.measured_s = started.elapsed().as_secs_f64();
    stalls
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
        let cores = meter.stop();
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok().and_then(|s| parse_cpu_list(&s));
        let want: Vec<Option<usize>> = online.expect("Linux lists its cores").into_iter().map(Some).collect();
        assert_eq!(cores.iter().map(|s| s.cpu).collect::<Vec<_>>(), want);
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
        let cores = meter.stop();
        assert!(!cores.is_empty());
        for s in cores {
            assert!(s.count >= 1 && s.longest_ms >= 80.0 && s.total_ms >= 80.0, "{s:?}");
            assert!(s.measured_s >= 0.1 && s.measured_s < 5.0, "{s:?}");
        }
    }

    #[test]
    fn stops_by_itself_at_the_deadline() {
        let meter = StallMeter::start(Instant::now() + Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(200));
        // The threads have already ended; stop only collects them.
        for s in meter.stop() {
            assert!(s.measured_s < 0.15, "{s:?}");
        }
    }
}
