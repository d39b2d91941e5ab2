#!/usr/bin/env bash
# What a cluster costs (issue #23, docs/cluster.md "Capacity model"): runs `chinwag bench`
# scenarios against 1, 2 or 3 cluster nodes on this machine's NATS and PostgreSQL, with the
# members spread round-robin over the nodes, and against one node without --cluster on the same
# PostgreSQL (the cost of cluster mode itself). Each run gets a fresh PostgreSQL database, a
# cluster name of its own and fresh nodes (own data directories, ports chosen by the system);
# afterwards the nodes are stopped, the database dropped and the cluster's NATS stream and
# buckets deleted.
#
# Per run it records, over the bench's measured phase (set-up excluded): the deliveries, the CPU
# time of all the nodes together (deliveries per cluster CPU-second = deliveries / that sum), of
# each node, of nats-server, and of PostgreSQL (the backends of the run's database, and apart
# from them the server's shared processes: walwriter, checkpointer, background writer).
# NATS and PostgreSQL are the machine's, shared with whatever else runs: their CPU includes
# that work too.
#
# Usage: bench/cluster.sh [CONFIG...]
#   CONFIG     solo (one node without --cluster, PostgreSQL store), 1, 2, 3 (cluster nodes);
#              default: solo 1 2 3
#   ROUNDS=n   rounds, each running every config and scenario in turn (default 2)
#   SCENARIOS="fanout-100 fanout-1000 pairs"   which scenarios (names below; pairs-40k too)
#   CHINWAG=path   the binary (default $CARGO_TARGET_DIR/release/chinwag)
#   NATS=url       default nats://127.0.0.1:4222
#   PG=url         a database to connect to for CREATE/DROP DATABASE
#                  (default postgres://postgres@127.0.0.1:5432/test)
#   OUT=dir        logs and results (default target/bench-cluster); the JSON lines go to
#                  $OUT/cluster.jsonl, the table is printed at the end (bench/cluster_table.py)
# The nodes and the generator are not pinned: with several nodes on two cores the rates below
# are moderate (a few per cent of a core per node) so that nothing saturates.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/bench-cluster}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CHINWAG=${CHINWAG:-${CARGO_TARGET_DIR:-$PWD/target}/release/chinwag}
NATS=${NATS:-nats://127.0.0.1:4222}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
ROUNDS=${ROUNDS:-2}
SCENARIOS=${SCENARIOS:-fanout-100 fanout-1000 pairs}
CONFIGS=("$@")
[[ ${#CONFIGS[@]} -gt 0 ]] || CONFIGS=(solo 1 2 3)
RESULTS="$OUT/cluster.jsonl"
NODE_NAMES=(a b c)

# `chinwag bench` arguments per scenario: fixed rates, about 15 s each.
scenario_args() {
    case $1 in
    fanout-100) echo "fanout --members 100 --senders 10 --rate 1000 --messages 1500" ;;
    fanout-1000) echo "fanout --members 1000 --senders 1 --rate 100 --messages 1500" ;;
    pairs) echo "pairs --members 1000 --rate 10000 --messages 150" ;;
    # The same at four times the rate: near what two cores take, where the hops batch.
    pairs-40k) echo "pairs --members 1000 --rate 40000 --messages 600" ;;
    *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

[[ -x $CHINWAG ]] || { echo "no chinwag binary at $CHINWAG (cargo build --release -p chinwag)" >&2; exit 1; }
NATS_HOSTPORT=${NATS#nats://}
NATS_PID=$(ss -ltnpH "sport = :${NATS_HOSTPORT##*:}" | grep -o 'nats-server",pid=[0-9]*' | head -1 | grep -o '[0-9]*$') || true
[[ -n $NATS_PID ]] || { echo "no nats-server listening at $NATS" >&2; exit 1; }
PG_SHARED=$(ps -u postgres -o pid=,args= | awk '/walwriter|checkpointer|background writer/ {print $1}')

sql() { psql -qAtX "$PG" -c "$1"; }

# Deletes a cluster's stream and buckets on NATS (JetStream API, plain NATS protocol).
nats_delete() {
    python3 - "$NATS_HOSTPORT" "$1" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
cluster = sys.argv[2]
s = socket.create_connection((host, int(port)), timeout=5)
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.cluster-sh 1\r\n')
for stream in (f"{cluster}-log", f"KV_{cluster}-claims", f"KV_{cluster}-nodes"):
    s.sendall(f"PUB $JS.API.STREAM.DELETE.{stream} _INBOX.cluster-sh 0\r\n\r\nPING\r\n".encode())
    while True:
        line = f.readline()
        if line.startswith(b"MSG"):
            body = f.read(int(line.split()[-1]) + 2)
            if b'"success":true' not in body:
                print(f"cluster.sh: deleting {stream}: {body.decode().strip()}", file=sys.stderr)
            break
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        if not line or line.startswith(b"-ERR"):
            print(f"cluster.sh: deleting {stream}: {line!r}", file=sys.stderr)
            break
EOF
}

PIDS=()
DB=
CLUSTER=
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    if [[ -n $DB ]]; then sql "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; fi
    if [[ -n $CLUSTER ]]; then nats_delete "$CLUSTER" || true; fi
    DB=
    CLUSTER=
}
trap cleanup EXIT

# Starts node $2 (a name, or "solo") of run directory $1; prints its plaintext address.
start_node() {
    local dir=$1 name=$2 cluster_args=()
    mkdir -p "$dir/$name"
    if [[ $name != solo ]]; then
        cluster_args=(--cluster "$NATS" --cluster-name "$CLUSTER" --node-name "$name")
    fi
    NO_COLOR=1 "$CHINWAG" serve --data-dir "$dir/$name" \
        --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --no-quic --no-web --discovery off \
        --sendq 1000000 --load-test --store "${PG%/*}/$DB" "${cluster_args[@]}" \
        >"$dir/$name.log" 2>&1 &
    PIDS+=($!)
}

# Waits for the banner of the node logging to $1; prints its plaintext address.
address_of() {
    local addr
    for _ in $(seq 300); do
        addr=$(sed -n 's/^ *listening on plaintext //p' "$1" | head -1)
        if [[ -n $addr ]] && grep -q "SHA-256 fingerprint" "$1"; then echo "$addr"; return; fi
        sleep 0.1
    done
    echo "no banner in $1 within 30 s:" >&2
    tail -20 "$1" >&2
    return 1
}

# Waits until every node in directory $1 sees all $2 names as live.
wait_for_nodes() {
    local dir=$1 want=$2 node seen
    for node in "${@:3}"; do
        for _ in $(seq 150); do
            seen=$("$CHINWAG" admin --data-dir "$dir/$node" --json nodes 2>/dev/null |
                python3 -c 'import json,sys; v=json.load(sys.stdin); print(len(v.get("nodes", [])))' 2>/dev/null) || seen=0
            [[ $seen -ge $want ]] && break
            sleep 0.2
        done
        [[ $seen -ge $want ]] || { echo "node $node sees $seen of $want nodes after 30 s" >&2; return 1; }
    done
}

run_one() {
    local config=$1 scenario=$2 round=$3 n names=() targets=() dir i args
    local tag="$config-$scenario-$round"
    dir="$OUT/$tag"
    rm -rf "$dir"
    mkdir -p "$dir"
    DB="cluster_sh_$$_${config}_${scenario//-/_}_$round"
    CLUSTER="bench-$$-$config-$scenario-$round"
    sql "CREATE DATABASE $DB"
    if [[ $config == solo ]]; then
        names=(solo)
        CLUSTER=
    else
        names=("${NODE_NAMES[@]:0:$config}")
    fi
    n=${#names[@]}
    # The first node makes the stream, the buckets and the database's tables; the others follow.
    start_node "$dir" "${names[0]}"
    targets=("$(address_of "$dir/${names[0]}.log")")
    for name in "${names[@]:1}"; do start_node "$dir" "$name"; done
    for name in "${names[@]:1}"; do targets+=("$(address_of "$dir/$name.log")"); done
    if [[ $config != solo ]]; then wait_for_nodes "$dir" "$n" "${names[@]}"; fi
    args=()
    for i in "${!names[@]}"; do
        args+=(--target "${targets[$i]}" --server-pid "${PIDS[$i]}" --watch-pid "node-${names[$i]}=${PIDS[$i]}")
    done
    args+=(--watch-pid "nats=$NATS_PID")
    for pid in $(sql "SELECT pid FROM pg_stat_activity WHERE datname = '$DB'"); do
        args+=(--watch-pid "postgres=$pid")
    done
    for pid in $PG_SHARED; do args+=(--watch-pid "postgres-shared=$pid"); done
    echo "== $tag: $n node(s) at ${targets[*]}, $(cut -d' ' -f1-3 /proc/loadavg) load" >&2
    # shellcheck disable=SC2046 # the scenario's arguments are a list
    "$CHINWAG" bench $(scenario_args "$scenario") "${args[@]}" --duration 90 \
        --label "$tag" --json-out "$RESULTS" >"$dir/bench.txt" 2>&1 || echo "bench failed: see $dir/bench.txt" >&2
    grep -E "delivered|lost|server CPU|deliveries/CPU-s|watched|latency ms|error" "$dir/bench.txt" | sed 's/^/   /' >&2 || true
    for name in "${names[@]}"; do
        # Warnings and errors only (not a client's "Read error" at the end); `grep -m` rather
        # than `| head`, whose early exit would fail the pipeline and end the script.
        if grep -qE " (WARN|ERROR) |panicked" "$dir/$name.log"; then
            echo "   $name logged:" >&2
            grep -m 5 -E " (WARN|ERROR) |panicked" "$dir/$name.log" | sed 's/^/     /' >&2
        fi
    done
    cleanup
}

for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        for config in "${CONFIGS[@]}"; do
            run_one "$config" "$scenario" "$round"
        done
    done
done
python3 bench/cluster_table.py "$RESULTS"
