#!/usr/bin/env bash
# Runs the same `chinwag bench` scenarios against chinwag, InspIRCd and ngIRCd on this machine
# and prints a table of ratios (chinwag against the best of the others).
#
# Each run gets a fresh server process pinned to CPU 0 (taskset) and the load generator pinned
# to CPU 1. Servers listen on loopback only, with connection, flood and SendQ limits raised so
# that they never trigger (a saturated 1000-member room can otherwise drop the members the
# generator happens to read last). chinwag otherwise runs as shipped: history on,
# synchronous=FULL.
#
# Usage: bench/compare.sh [SERVER...]      (default: chinwag inspircd ngircd)
#   OUT=dir     where configs, logs and results.jsonl go (default: target/bench-compare)
#   QUICK=1     smaller counts, for trying the script out
#   ONLY="a b"  run only these scenarios (names from the table below)
#   ROUNDS=n    run everything n times, servers interleaved; the table shows medians
# Not part of CI: it installs Debian packages and takes several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/bench-compare}
SERVERS=("${@:-chinwag inspircd ngircd}")
read -r -a SERVERS <<<"${SERVERS[*]}"
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
PORT=16667
TLS_PORT=16697
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

echo "== building chinwag (release)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p chinwag
CHINWAG="$CARGO_TARGET_DIR/release/chinwag"

echo "== Debian packages: inspircd ngircd"
if ! dpkg -s inspircd ngircd >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends inspircd ngircd
fi
# Packages may start their daemons; the ports below must be ours.
service inspircd stop >/dev/null 2>&1 || true
service ngircd stop >/dev/null 2>&1 || true

write_configs() {
    cat >"$OUT/inspircd.conf" <<EOF
<server name="inspircd.bench" description="bench" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="$PORT" type="clients">
<connect name="bench" allow="127.0.0.1" maxchans="100" timeout="60" pingfreq="600"
         hardsendq="1073741824" softsendq="1073741824" recvq="1048576"
         threshold="1000000000" commandrate="1000000000" fakelag="no"
         localmax="100000" globalmax="100000" limit="100000" maxconnwarn="no" useident="no" resolvehostnames="no">
<performance netbuffersize="10240" somaxconn="4096" softlimit="30000" clonesonconnect="no" nouserdns="yes">
<security hideserver="" announceinvites="dynamic">
<channels users="1000" opers="1000">
<files motd="$OUT/motd.txt">
<pid file="$OUT/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="sparse" target="$OUT/inspircd.log">
EOF
    cat >"$OUT/ngircd.conf" <<EOF
[Global]
    Name = ngircd.bench
    Info = bench
    Listen = 127.0.0.1
    Ports = $PORT
    MotdFile = $OUT/motd.txt
    PidFile = $OUT/ngircd.pid
    ServerUID = root
    ServerGID = root
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxPenaltyTime = 0
    PingTimeout = 600
    PongTimeout = 600
[Options]
    DNS = no
    Ident = no
    PAM = no
EOF
    echo "chinwag bench" >"$OUT/motd.txt"
}

SERVER_PID=""
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() {
    local name=$1
    # Something else on the port would be measured instead of this server.
    for port in $PORT $TLS_PORT; do
        if port_open "$port"; then
            echo "port $port is already in use; stop whatever listens there first" >&2
            exit 1
        fi
    done
    case $name in
    chinwag)
        rm -rf "$OUT/chinwag-data"
        taskset -c "$SERVER_CPU" "$CHINWAG" serve --data-dir "$OUT/chinwag-data" \
            --listen "127.0.0.1:$PORT" --tls-listen "127.0.0.1:$TLS_PORT" --sendq 1000000 --load-test \
            >"$OUT/chinwag.log" 2>&1 &
        ;;
    inspircd)
        taskset -c "$SERVER_CPU" inspircd --config "$OUT/inspircd.conf" --nofork --runasroot \
            >"$OUT/inspircd.out" 2>&1 &
        ;;
    ngircd)
        taskset -c "$SERVER_CPU" ngircd --config "$OUT/ngircd.conf" --nodaemon >"$OUT/ngircd.out" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
        if port_open "$PORT"; then
            return 0
        fi
        sleep 0.1
    done
    echo "$name did not start listening on $PORT" >&2
    return 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap 'stop_server' EXIT

if [[ -n "${QUICK:-}" ]]; then SCALE=10; else SCALE=1; fi
# name | chinwag bench arguments | servers it applies to
SCENARIOS=(
    "fanout-100|fanout --members 100 --senders 10 --messages $((6000 / SCALE))|all"
    "fanout-1000|fanout --members 1000 --senders 10 --messages $((300 / SCALE))|all"
    "pairs-500|pairs --members 1000 --messages $((1000 / SCALE))|all"
    "latency-100|fanout --members 100 --senders 10 --rate 1000 --messages $((1500 / SCALE))|all"
    "latency-1000|fanout --members 1000 --senders 1 --rate 100 --messages $((1500 / SCALE))|all"
    "latency-pairs|pairs --members 1000 --rate 50000 --messages $((750 / SCALE))|all"
    "latency-100-30|fanout --members 100 --senders 10 --rate 30 --messages $((60 / SCALE))|all"
    "latency-pairs-5k|pairs --members 1000 --rate 5000 --messages $((75 / SCALE))|all"
    "idle-10k|idle --connections $((10000 / SCALE)) --hold 3|all"
    "connect-10k|connect --connections $((10000 / SCALE)) --in-flight 100|all"
    "connect-10k-tls|connect --connections $((10000 / SCALE)) --in-flight 100 --tls|chinwag"
    "history|history --senders 10 --messages $((20000 / SCALE))|chinwag"
    "hold-max|idle --connections $((19800 / SCALE)) --hold 3|chinwag"
)

write_configs
for round in $(seq "${ROUNDS:-1}"); do
for spec in "${SCENARIOS[@]}"; do
    IFS='|' read -r name args only <<<"$spec"
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
    for server in "${SERVERS[@]}"; do
        if [[ "$only" != all && "$only" != "$server" ]]; then continue; fi
        echo "== $name on $server (round $round): chinwag bench $args"
        start_server "$server"
        target="127.0.0.1:$PORT"
        if [[ "$args" == *--tls* ]]; then target="127.0.0.1:$TLS_PORT"; fi
        # shellcheck disable=SC2086
        if ! taskset -c "$BENCH_CPU" "$CHINWAG" bench $args --target "$target" --server-pid "$SERVER_PID" \
            --label "$server/$name" --duration 180 --json-out "$RESULTS" | sed 's/^/    /' | grep -v '^    {'; then
            echo "    (run failed)"
        fi
        stop_server
    done
done
done

echo
echo "== results ($RESULTS)"
python3 bench/table.py "$RESULTS"
