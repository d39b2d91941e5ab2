//! The server's CPU time and memory, read from `/proc/PID` (Linux).
//!
//! CPU time is `utime + stime` from `/proc/PID/stat`: every thread of the process, including
//! threads that have already exited, which is what "server CPU-seconds" must mean for a
//! multi-threaded server. Memory is `VmRSS` from `/proc/PID/status` (shared by all threads).

use std::collections::BTreeMap;
use std::time::Duration;

/// Clock ticks per second in `/proc/PID/stat`. This is `USER_HZ`, which Linux fixes at 100 on
/// every architecture it exposes to user space, whatever the kernel's internal tick rate.
const USER_HZ: u64 = 100;

/// CPU time used by the process so far (user plus system), or `None` if it cannot be read.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: start after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of the whole line are utime and stime; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Resident memory of the process in KiB, or `None` if it cannot be read.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of all the servers' processes together, or `None` if there are none or any of
/// them cannot be read (a sum that silently missed a node would understate the cost).
pub(crate) fn total_cpu_time(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_time(pid)).sum()
}

/// Resident memory of all the servers' processes together, in KiB (`None` as for CPU time).
pub(crate) fn total_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// Why server CPU and memory are missing from a report, when they are.
pub(crate) fn unavailable(pids: &[u32]) -> Option<String> {
    if pids.is_empty() {
        return Some("no --server-pid given".to_owned());
    }
    let unreadable: Vec<String> = pids.iter().filter(|&&p| cpu_time(p).is_none()).map(u32::to_string).collect();
    (!unreadable.is_empty()).then(|| format!("cannot read /proc for process {}", unreadable.join(", ")))
}

/// The servers' CPU time between two samples, when both exist.
#[derive(Clone, Debug)]
pub(crate) struct CpuMeter {
    pids: Vec<u32>,
    start: Option<Duration>,
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> Self {
        CpuMeter { pids: pids.to_vec(), start: total_cpu_time(pids) }
    }

    /// CPU time since [`CpuMeter::start`], summed over every process.
    pub fn elapsed(&self) -> Option<Duration> {
        let now = total_cpu_time(&self.pids)?;
        Some(now.saturating_sub(self.start?))
    }
}

/// CPU time of other processes over the same window, per name (e.g. the message bus and the
/// database a cluster's nodes use): the processes under one name are summed, and one that is
/// gone by the end (or unreadable at the start) is left out rather than failing the sum.
#[derive(Clone, Debug)]
pub(crate) struct WatchMeter {
    start: Vec<(String, u32, Option<Duration>)>,
}

impl WatchMeter {
    pub fn start(watched: &[(String, u32)]) -> Self {
        WatchMeter { start: watched.iter().map(|(name, pid)| (name.clone(), *pid, cpu_time(*pid))).collect() }
    }

    /// Seconds of CPU per name since [`WatchMeter::start`].
    pub fn elapsed(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (name, pid, start) in &self.start {
            let used = match (start, cpu_time(*pid)) {
                (Some(start), Some(now)) => now.saturating_sub(*start).as_secs_f64(),
                _ => 0.0,
            };
            *out.entry(name.clone()).or_insert(0.0) += used;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_time(me).is_some_and(|t| t > Duration::ZERO));
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        let one = total_rss_kib(&[me]).expect("readable");
        assert!(total_rss_kib(&[me, me]).is_some_and(|two| two >= one * 2 - 1024));
        assert_eq!(total_cpu_time(&[]), None);
        assert!(unavailable(&[]).is_some_and(|why| why.contains("--server-pid")));
        assert_eq!(unavailable(&[me]), None);
        let watch = WatchMeter::start(&[("me".to_owned(), me), ("me".to_owned(), me), ("gone".to_owned(), u32::MAX)]);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        let used = watch.elapsed();
        assert!(used["me"] >= 0.02, "two entries of one busy process add up: {used:?}");
        assert_eq!(used["gone"], 0.0);
    }
}
