//! `--plot FILE.svg`: the latency distribution (latency by percentile, the percentile axis
//! stretched towards the tail as HDR plots do) and the throughput over time, side by side.
//!
//! Written by hand: two line charts do not justify a plotting library and its dependencies.

use std::fmt::Write as _;
use std::path::Path;

use crate::Report;

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 260.0;
const MARGIN: f64 = 50.0;
/// The percentile axis ends at 99.999%.
const MAX_NINES: f64 = 5.0;

/// Writes the plot for `report` to `path`.
pub fn write_svg(report: &Report, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, svg(report))
}

fn svg(report: &Report) -> String {
    let width = 2.0 * (PANEL_W + 2.0 * MARGIN);
    let height = PANEL_H + 2.0 * MARGIN;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!("{} {} {}", report.label, report.scenario, if report.tls { "TLS" } else { "" });
    let _ = writeln!(s, r#"<text x="{MARGIN}" y="18" font-size="13">{}</text>"#, escape(title.trim()));

    // Latency by percentile: x = number of nines, 0 (p0) .. 5 (p99.999).
    let mut latency = Vec::new();
    if let Some(h) = &report.histogram {
        if !h.is_empty() {
            for i in 0..=100 {
                let nines = MAX_NINES * f64::from(i) / 100.0;
                let q = 1.0 - 10f64.powf(-nines);
                latency.push((nines, h.value_at_quantile(q) as f64 / 1000.0));
            }
        }
    }
    let ticks = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    panel(&mut s, MARGIN, "latency (ms) by percentile", &latency, (0.0, MAX_NINES), &ticks);

    let x0 = PANEL_W + 3.0 * MARGIN;
    let what = if report.scenario == "connect" || report.scenario == "idle" { "registrations" } else { "deliveries" };
    let end = report.timeline.last().map_or(1.0, |p| p.0.max(0.001));
    let t_ticks: Vec<String> = (0..=4).map(|i| format!("{:.1}s", end * f64::from(i) / 4.0)).collect();
    let t_ticks: Vec<&str> = t_ticks.iter().map(String::as_str).collect();
    panel(&mut s, x0, &format!("{what} per second over time"), &report.timeline, (0.0, end), &t_ticks);
    s.push_str("</svg>\n");
    s
}

/// One chart at horizontal offset `x0`: axes, evenly spaced x tick labels, the y range from
/// zero to the largest value, and the line.
fn panel(s: &mut String, x0: f64, title: &str, points: &[(f64, f64)], x_range: (f64, f64), x_ticks: &[&str]) {
    let top = MARGIN;
    let bottom = MARGIN + PANEL_H;
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let _ = writeln!(s, r#"<text x="{x0}" y="{}">{}</text>"#, top - 10.0, escape(title));
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="black" points="{x0},{top} {x0},{bottom} {},{bottom}"/>"#,
        x0 + PANEL_W
    );
    for i in 0..=4 {
        let y = bottom - PANEL_H * f64::from(i) / 4.0;
        let value = y_max * f64::from(i) / 4.0;
        let _ = writeln!(s, r##"<line x1="{x0}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/>"##, x0 + PANEL_W);
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, x0 - 4.0, y + 4.0, short(value));
    }
    let n = x_ticks.len().saturating_sub(1).max(1) as f64;
    for (i, label) in x_ticks.iter().enumerate() {
        let x = x0 + PANEL_W * i as f64 / n;
        let _ = writeln!(s, r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#, bottom + 16.0, escape(label));
    }
    let span = (x_range.1 - x_range.0).max(f64::MIN_POSITIVE);
    let line: Vec<String> = points
        .iter()
        .map(|(x, y)| {
            let px = x0 + PANEL_W * ((x - x_range.0) / span).clamp(0.0, 1.0);
            let py = bottom - PANEL_H * (y / y_max).clamp(0.0, 1.0);
            format!("{px:.1},{py:.1}")
        })
        .collect();
    let _ = writeln!(s, r##"<polyline fill="none" stroke="#c33" stroke-width="1.5" points="{}"/>"##, line.join(" "));
}

/// `1234567.0` → `1.23M`.
fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v >= 10.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
