//! What a run found: a [`Report`], printed as a table for people and as one JSON line for
//! scripts (`bench/compare.sh` reads those lines).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stall::Stalls;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        })
    }
}

/// The result of one run. Fields that do not apply to a scenario are `None` and left out of
/// the JSON line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    /// Free text from `--label` (which server this was).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The targets, comma-separated (one address for a single server).
    pub target: String,
    /// With several targets: how many members or connections each had, in `target`'s order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_target: Vec<usize>,
    pub tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Fixed total rate in messages per second; absent when saturated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    pub in_flight: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Seconds the measured phase took (set-up excluded).
    pub elapsed_s: f64,
    /// Whether the run hit its deadline before everything expected arrived.
    pub timed_out: bool,
    /// Server CPU time (user + system) during the measured phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_s: Option<f64>,
    /// Why server CPU time and memory are not reported, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_unavailable: Option<String>,
    /// CPU time of the watched processes (`--watch-pid`) over the same phase, per name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub watched_cpu_s: BTreeMap<String, f64>,

    // Message scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reordered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries_per_cpu_s: Option<f64>,
    /// Message latency (send to delivery), or registration latency for `connect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Latency>,
    /// How often the load generator's machine itself stopped during the measured phase (see
    /// `stall.rs`): every latency above includes these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub machine_stalls: Vec<Stalls>,
    /// Fixed-rate runs: the latency of the deliveries that were not in flight while a core of
    /// the machine was stopped, and what share of all deliveries those are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_quiet_us: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_share: Option<f64>,

    // Connection scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrations_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_after_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_conn_bytes: Option<f64>,

    /// The first few problems seen (refusals, dropped connections).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,

    /// Latency distribution, for the plot.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
    /// Deliveries (or registrations) per second, sampled over the measured phase: (seconds
    /// since its start, rate).
    #[serde(skip)]
    pub timeline: Vec<(f64, f64)>,
}

/// How many distinct problems a report keeps.
pub(crate) const MAX_ERRORS: usize = 5;

impl Report {
    pub(crate) fn new(opts: &crate::Options) -> Self {
        Report {
            scenario: opts.scenario.name().to_owned(),
            label: opts.label.clone(),
            target: opts.targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            server_cpu_unavailable: crate::procfs::unavailable(&opts.server_pids),
            tls: opts.tls,
            in_flight: opts.in_flight,
            ..Report::default()
        }
    }

    /// Notes how `n` members or connections are spread over the targets (with several).
    pub(crate) fn spread(&mut self, opts: &crate::Options, n: usize) {
        if opts.targets.len() > 1 {
            self.per_target = vec![0; opts.targets.len()];
            for i in 0..n {
                self.per_target[opts.target_of(i)] += 1;
            }
        }
    }

    pub(crate) fn note_error(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    /// The one-line JSON form.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for Report {
    /// A two-column table of whatever this scenario measured.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: Vec<(&str, String)> = Vec::new();
        let title =
            if self.label.is_empty() { self.target.clone() } else { format!("{} ({})", self.label, self.target) };
        rows.push(("scenario", format!("{}{} against {title}", self.scenario, if self.tls { " (TLS)" } else { "" })));
        let mut setup = String::new();
        for (name, value) in [("members", self.members), ("senders", self.senders), ("connections", self.connections)] {
            if let Some(v) = value {
                let _ = write!(setup, "{name} {v}, ");
            }
        }
        if let Some(m) = self.messages {
            let _ = write!(setup, "messages/sender {m}, ");
        }
        match self.rate {
            Some(r) => setup.push_str(&format!("rate {r}/s")),
            None => setup.push_str(&format!("in flight {}", self.in_flight)),
        }
        rows.push(("load", setup));
        if !self.per_target.is_empty() {
            let spread: Vec<String> =
                self.target.split(',').zip(&self.per_target).map(|(t, n)| format!("{t}: {n}")).collect();
            rows.push(("per target", spread.join(", ")));
        }
        rows.push((
            "measured for",
            format!("{:.3} s{}", self.elapsed_s, if self.timed_out { " (deadline hit)" } else { "" }),
        ));
        if let (Some(sent), Some(expected), Some(delivered)) = (self.sent, self.expected, self.delivered) {
            rows.push(("sent", group(sent as f64)));
            rows.push(("delivered", format!("{} of {} expected", group(delivered as f64), group(expected as f64))));
            rows.push(("lost / reordered", format!("{} / {}", self.lost.unwrap_or(0), self.reordered.unwrap_or(0))));
        }
        if let Some(rate) = self.deliveries_per_s {
            rows.push(("deliveries/s", group(rate)));
        }
        if let Some(n) = self.registered {
            rows.push(("registered", format!("{n} ({} failed)", self.failed.unwrap_or(0))));
        }
        if let Some(rate) = self.registrations_per_s {
            rows.push(("registrations/s", group(rate)));
        }
        match (self.server_cpu_s, &self.server_cpu_unavailable) {
            (Some(cpu), _) => rows.push(("server CPU", format!("{cpu:.3} s"))),
            (None, Some(why)) => rows.push(("server CPU", format!("unavailable ({why})"))),
            (None, None) => {}
        }
        if let Some(per) = self.deliveries_per_cpu_s {
            rows.push(("deliveries/CPU-s", group(per)));
        }
        for (name, cpu) in &self.watched_cpu_s {
            rows.push(("watched CPU", format!("{name} {cpu:.3} s")));
        }
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        let percentiles =
            |l: &Latency| format!("p50 {}  p99 {}  p99.9 {}  max {}", ms(l.p50), ms(l.p99), ms(l.p999), ms(l.max));
        if let Some(l) = &self.latency_us {
            rows.push(("latency ms", percentiles(l)));
        }
        if let (Some(l), Some(share)) = (&self.latency_quiet_us, self.quiet_share) {
            rows.push((
                "quiet latency ms",
                format!("{} ({:.1}% of deliveries: not in flight during a stall)", percentiles(l), share * 100.0),
            ));
        }
        for s in &self.machine_stalls {
            let core = s.cpu.map_or_else(|| "a core".to_owned(), |c| format!("CPU {c}"));
            rows.push((
                "machine stalls",
                format!(
                    "{core}: {} of {} ms or more, {:.0} ms in all, longest {:.1} ms",
                    s.count,
                    crate::stall::STALL.as_millis(),
                    s.total_ms,
                    s.longest_ms
                ),
            ));
        }
        if let (Some(before), Some(after)) = (self.rss_before_kib, self.rss_after_kib) {
            rows.push(("server RSS", format!("{before} KiB before, {after} KiB after")));
        }
        if let Some(per) = self.rss_per_conn_bytes {
            rows.push(("RSS/connection", format!("{per:.0} bytes ({:.2} KiB)", per / 1024.0)));
        }
        for e in &self.errors {
            rows.push(("problem", e.clone()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            writeln!(f, "  {k:<width$}  {v}")?;
        }
        Ok(())
    }
}

/// `1234567.8` → `1,234,568`.
fn group(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::group(0.0), "0");
        assert_eq!(super::group(999.0), "999");
        assert_eq!(super::group(1_234_567.8), "1,234,568");
    }
}
