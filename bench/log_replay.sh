#!/usr/bin/env bash
# How long a node takes to join a network whose log is long (docs/cluster.md, "Open questions":
# the log is read from its start at every join). Node a takes ENTRIES state changes from
# CLIENTS clients (AWAY set and cleared, JOIN and PART of a room of each client's own: each one
# log entry); then node b starts, and the time from its start until it has read the log to the
# end (its "read the network's log: accepting connections" line; `/readyz` 200 from then on) is
# measured, with its CPU time and memory.
# Fresh PostgreSQL database, cluster name and data directories per run; all removed afterwards.
#
# Usage: bench/log_replay.sh
#   ENTRIES=n      log entries to make (default 200000)
#   CLIENTS=n      clients making them (default 50)
#   CHINWAG=path   the binary (default $CARGO_TARGET_DIR/release/chinwag)
#   NATS=url, PG=url, OUT=dir as for bench/cluster.sh; the JSON line goes to $OUT/log_replay.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/bench-log-replay}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CHINWAG=${CHINWAG:-${CARGO_TARGET_DIR:-$PWD/target}/release/chinwag}
NATS=${NATS:-nats://127.0.0.1:4222}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
ENTRIES=${ENTRIES:-200000}
CLIENTS=${CLIENTS:-50}
NATS_HOSTPORT=${NATS#nats://}
[[ -x $CHINWAG ]] || { echo "no chinwag binary at $CHINWAG (cargo build --release -p chinwag)" >&2; exit 1; }

sql() { psql -qAtX "$PG" -c "$1"; }

# A JetStream API request on the plain NATS protocol: prints the reply's body.
js_api() {
    python3 - "$NATS_HOSTPORT" "$1" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.log-replay 1\r\n')
s.sendall(f"PUB $JS.API.{sys.argv[2]} _INBOX.log-replay 0\r\n\r\nPING\r\n".encode())
while True:
    line = f.readline()
    if line.startswith(b"MSG"):
        print(f.read(int(line.split()[-1])).decode())
        break
    if line.startswith(b"PING"):
        s.sendall(b"PONG\r\n")
    if not line or line.startswith(b"-ERR"):
        sys.exit(f"log_replay.sh: {sys.argv[2]}: {line!r}")
EOF
}

RUN="$OUT/run-$$"
DB="log_replay_$$"
CLUSTER="replay-$$"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    for stream in "$CLUSTER-log" "KV_$CLUSTER-claims" "KV_$CLUSTER-nodes"; do
        js_api "STREAM.DELETE.$stream" >/dev/null || true
    done
}
trap cleanup EXIT
sql "CREATE DATABASE $DB"
mkdir -p "$RUN"

start_node() {
    mkdir -p "$RUN/$1"
    NO_COLOR=1 "$CHINWAG" serve --data-dir "$RUN/$1" \
        --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --no-quic --no-web --discovery off \
        --load-test --store "${PG%/*}/$DB" --cluster "$NATS" --cluster-name "$CLUSTER" --node-name "$1" \
        >"$RUN/$1.log" 2>&1 &
    PIDS+=($!)
}

# Waits until the log $1 has a line matching $2; gives up after $3 seconds.
wait_for() {
    for _ in $(seq $(($3 * 20))); do
        grep -q "$2" "$1" && return 0
        sleep 0.05
    done
    echo "no '$2' in $1 within $3 s:" >&2
    tail -20 "$1" >&2
    return 1
}

start_node a
wait_for "$RUN/a.log" "SHA-256 fingerprint" 30
wait_for "$RUN/a.log" "read the network's log" 30
ADDR=$(sed -n 's/^ *listening on plaintext //p' "$RUN/a.log" | head -1)
log_messages() { js_api "STREAM.INFO.$CLUSTER-log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])'; }
before=$(log_messages)

echo "making $ENTRIES log entries from $CLIENTS clients on node a ($ADDR)"
python3 - "$ADDR" "$ENTRIES" "$CLIENTS" <<'EOF'
import asyncio, sys
host, port = sys.argv[1].rsplit(":", 1)
entries, clients = int(sys.argv[2]), int(sys.argv[3])

async def client(n, count):
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"NICK replay{n}\r\nUSER replay{n} 0 * :replay\r\n".encode())
    await writer.drain()
    while b" 001 " not in await reader.readline():
        pass
    # Each step is one log entry (AWAY set, JOIN, AWAY cleared, PART), sent once the last one
    # was answered: a JOIN holds the client's later lines until its entry is back.
    steps = [(f"AWAY :busy {n}", b" 306 "), (f"JOIN #replay{n}", b" 366 "), ("AWAY", b" 305 "),
             (f"PART #replay{n}", b" PART ")]
    for i in range(count):
        line, answer = steps[i % 4]
        writer.write((line + "\r\n").encode())
        await writer.drain()
        while answer not in await reader.readline():
            pass
    writer.write(b"QUIT :done\r\n")
    await writer.drain()
    while await reader.readline():
        pass

async def main():
    per = entries // clients
    await asyncio.gather(*(client(n, per) for n in range(clients)))

asyncio.run(main())
EOF
# The clients are gone once node a applied their QUITs; their entries are all in the log.
for _ in $(seq 60); do
    count=$(log_messages)
    [[ $((count - before)) -ge $ENTRIES ]] && break
    sleep 0.5
done
count=$(log_messages)
echo "the log holds $count entries"

started=$(date +%s.%N)
start_node b
B_PID=${PIDS[-1]}
wait_for "$RUN/b.log" "read the network's log" 1200
ready=$(date +%s.%N)
read -r utime stime < <(awk '{print $14, $15}' "/proc/$B_PID/stat")
ticks=$(getconf CLK_TCK)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$B_PID/status")
python3 - "$count" "$started" "$ready" "$utime" "$stime" "$ticks" "$rss_kb" <<'EOF' | tee -a "$OUT/log_replay.jsonl"
import json, sys
count, started, ready, utime, stime, ticks, rss = sys.argv[1:]
seconds = float(ready) - float(started)
cpu = (int(utime) + int(stime)) / int(ticks)
print(json.dumps({
    "log_entries": int(count),
    "join_seconds": round(seconds, 2),
    "entries_per_second": round(int(count) / seconds),
    "node_cpu_seconds": round(cpu, 2),
    "node_rss_mb": round(int(rss) / 1024, 1),
}))
EOF
