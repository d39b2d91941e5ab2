#!/usr/bin/env python3
"""The table of bench/compare.sh from one or more results.jsonl files: per scenario and server,
the median of every run found (with its range), and chinwag against the best peer.

Usage: python3 bench/table.py RESULTS.jsonl [MORE.jsonl ...]
"""
import json, statistics, sys

rows = [json.loads(l) for path in sys.argv[1:] for l in open(path) if l.strip()]
# scenario -> server -> every run of it
by = {}
for r in rows:
    server, name = r["label"].split("/", 1)
    by.setdefault(name, {}).setdefault(server, []).append(r)
# scenario: (what is compared, how to read it from a JSON line, whether higher is better)
measures = {
    "fanout-100": ("deliveries per server CPU-s", lambda r: r.get("deliveries_per_cpu_s"), True),
    "fanout-1000": ("deliveries per server CPU-s", lambda r: r.get("deliveries_per_cpu_s"), True),
    "pairs-500": ("deliveries per server CPU-s", lambda r: r.get("deliveries_per_cpu_s"), True),
    "latency-100": ("p99 latency ms, 1000 msg/s", lambda r: r["latency_us"]["p99"] / 1000 if r.get("latency_us") else None, False),
    "latency-1000": ("p99 latency ms, 100 msg/s", lambda r: r["latency_us"]["p99"] / 1000 if r.get("latency_us") else None, False),
    "latency-pairs": ("p99 latency ms, 50k msg/s", lambda r: r["latency_us"]["p99"] / 1000 if r.get("latency_us") else None, False),
    "latency-100-30": ("p99 latency ms, 30 msg/s", lambda r: r["latency_us"]["p99"] / 1000 if r.get("latency_us") else None, False),
    "latency-pairs-5k": ("p99 latency ms, 5k msg/s", lambda r: r["latency_us"]["p99"] / 1000 if r.get("latency_us") else None, False),
    "idle-10k": ("RSS KiB per idle connection", lambda r: r["rss_per_conn_bytes"] / 1024 if r.get("rss_per_conn_bytes") else None, False),
    "connect-10k": ("server CPU-s for the registrations", lambda r: r.get("server_cpu_s"), False),
    "connect-10k-tls": ("server CPU-s (TLS)", lambda r: r.get("server_cpu_s"), False),
    "history": ("durable messages per second", lambda r: r.get("deliveries_per_s"), True),
    "hold-max": ("connections held (fd limit 20,000)", lambda r: r.get("registered"), True),
}
servers = sorted({s for v in by.values() for s in v}, key=lambda s: (s != "chinwag", s))
def fmt(x):
    if x is None: return "-"
    if x >= 1e6: return f"{x/1e6:.2f} M"
    if x >= 1e4: return f"{x/1e3:.0f} k"
    if x >= 100: return f"{x:.0f}"
    return f"{x:.2f}"
head = ["scenario", "measure"] + servers + ["chinwag vs best peer"]
out = []
for name, (label, get, higher) in measures.items():
    if name not in by: continue
    runs = {s: [v for v in map(get, by[name].get(s, [])) if v is not None] for s in servers}
    vals = {s: (statistics.median(v) if v else None) for s, v in runs.items()}
    peers = [v for s, v in vals.items() if s != "chinwag" and v]
    cw = vals.get("chinwag")
    ratio = "-"
    if cw and peers:
        best = max(peers) if higher else min(peers)
        ratio = f"{cw / best:.2f}x" if higher else f"{cw / best:.2f}x (lower is better)"
    cells = []
    for s in servers:
        cell = fmt(vals[s])
        if len(runs[s]) > 1:
            cell += f" ({fmt(min(runs[s]))}-{fmt(max(runs[s]))}, {len(runs[s])} runs)"
        for r in by[name].get(s, []):
            if r.get("lost") or r.get("failed") or r.get("timed_out"):
                cell += f" (a run lost {r.get('lost', 0)}, failed {r.get('failed', 0)}, timed out {r.get('timed_out')})"
        cells.append(cell)
    out.append([name, label] + cells + [ratio])
def show(head, out):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *out)]
    for row in [head] + out:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
show(head, out)

# The machine's own stalls during the latency runs (wake-ups of a 1 ms sleeper at least 5 ms
# late, on either core, added up): a latency is only as good as the machine was quiet while it
# ran.
def stalled_ms(r):
    cores = r.get("machine_stalls")
    return sum(c["total_ms"] for c in cores) if cores else None
# The same p99 over the deliveries that were not in flight during such a stall.
def quiet_p99(r):
    q = r.get("latency_quiet_us")
    return q["p99"] / 1000 if q else None
def per_cpu_s(r):
    return r.get("deliveries_per_cpu_s")
stall_out = []
for name in measures:
    if not name.startswith("latency") or name not in by: continue
    # At a fixed rate the server's CPU per delivery is compared too (issue #21): a server spends
    # its life far below saturation, where per-round and per-wake-up costs are not amortised.
    for label, get, digits in (("deliveries per server CPU-s (k)", lambda r: (per_cpu_s(r) or 0) / 1e3 or None, 0),
                               ("ms of machine stalls in the run", stalled_ms, 0),
                               ("p99 ms, deliveries no stall touched", quiet_p99, 2)):
        cells, vals = [], {}
        for s in servers:
            v = [x for x in map(get, by[name].get(s, [])) if x is not None]
            vals[s] = statistics.median(v) if v else None
            cells.append(f"{vals[s]:.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})" if v else "-")
        peers = [v for s, v in vals.items() if s != "chinwag" and v]
        ratio = "-"
        if get is quiet_p99 and vals.get("chinwag") and peers:
            ratio = f"{vals['chinwag'] / min(peers):.2f}x (lower is better)"
        elif get is not stalled_ms and vals.get("chinwag") and peers:
            ratio = f"{vals['chinwag'] / max(peers):.2f}x"
        stall_out.append([name, label] + cells + [ratio])
if stall_out:
    print()
    show(["scenario", "measure"] + servers + ["chinwag vs best peer"], stall_out)
