#!/usr/bin/env python3
"""The table of bench/cluster.sh from its JSON lines (labels CONFIG-SCENARIO-ROUND): per
scenario and config, the median over the rounds (with the range) of deliveries per CPU-second of
all the nodes together, the nodes' CPU per delivery, and the CPU of NATS and of PostgreSQL (the
run's database's backends; the shared background processes apart) in the same window.

Usage: python3 bench/cluster_table.py cluster.jsonl [MORE.jsonl ...]
"""
import json, statistics, sys

rows = [json.loads(l) for path in sys.argv[1:] for l in open(path) if l.strip()]
by = {}
for r in rows:
    config, rest = r["label"].split("-", 1)
    scenario = rest.rsplit("-", 1)[0]
    by.setdefault(scenario, {}).setdefault(config, []).append(r)

def per(r, key):
    return r.get("watched_cpu_s", {}).get(key, 0.0)

def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mid = fmt(statistics.median(values))
    return mid if len(values) == 1 else f"{mid} ({fmt(min(values))}-{fmt(max(values))})"

mega = lambda x: f"{x / 1e6:.2f} M"
micro = lambda x: f"{x:.2f}"
head = ["scenario", "config", "runs", "delivered/expected", "deliveries per node CPU-s",
        "node µs/delivery", "NATS µs/delivery", "PG µs/delivery", "PG shared µs/delivery",
        "all µs/delivery", "p99 ms"]
out = [head, ["---"] * len(head)]
order = {"solo": 0, "1": 1, "2": 2, "3": 3}
for scenario in sorted(by):
    for config in sorted(by[scenario], key=lambda c: order.get(c, 9)):
        runs = by[scenario][config]
        def us(r, cpu):
            d = r.get("delivered") or 0
            return cpu * 1e6 / d if d else None
        out.append([
            scenario,
            "1 node, no --cluster" if config == "solo" else f"{config} node{'s' if config != '1' else ''}",
            str(len(runs)),
            ", ".join(f"{r.get('delivered', 0)}/{r.get('expected', 0)}" for r in runs),
            spread([r.get("deliveries_per_cpu_s") for r in runs], mega),
            spread([us(r, r.get("server_cpu_s") or 0) for r in runs], micro),
            spread([us(r, per(r, "nats")) for r in runs], micro),
            spread([us(r, per(r, "postgres")) for r in runs], micro),
            spread([us(r, per(r, "postgres-shared")) for r in runs], micro),
            spread([us(r, (r.get("server_cpu_s") or 0) + per(r, "nats") + per(r, "postgres") + per(r, "postgres-shared"))
                    for r in runs], micro),
            spread([r["latency_us"]["p99"] / 1000 if r.get("latency_us") else None for r in runs], lambda x: f"{x:.1f}"),
        ])
for row in out:
    print("| " + " | ".join(row) + " |")
for r in rows:
    if r.get("errors") or r.get("lost") or r.get("timed_out"):
        print(f"{r['label']}: lost {r.get('lost')}, timed out {r.get('timed_out')}, errors {r.get('errors')}")
