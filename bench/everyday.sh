#!/usr/bin/env bash
# Where a delivery's cost goes at a fixed rate (issue #21): runs one `chinwag bench` scenario
# against a fresh server pinned to CPU 0 (the generator on CPU 1, as bench/compare.sh does) and,
# over a window of the measured phase, records per thread of the server its CPU time (user and
# kernel, from /proc) and, as asked, its syscalls (`perf trace -s`) or a `perf record` profile.
#
# Usage: bench/everyday.sh SERVER 'BENCH ARGS' [WHAT]
#   SERVER  chinwag | inspircd | ngircd (the peers configured as bench/compare.sh does)
#   WHAT    cpu (default: CPU per thread and `perf stat` counters only), trace (syscalls per
#           thread), record (perf record -e cpu-clock -g, kernel symbols included)
#   START=s, WINDOW=s  the window, in seconds after the generator starts (default 3 and 10)
#   CHINWAG=path       the binary (default $CARGO_TARGET_DIR/release/chinwag)
#   PORT=n             where the server listens (default 16667; TLS on PORT + 30)
#   SERVE_ARGS="…"    more flags for `chinwag serve` (e.g. --sqlite-synchronous normal)
#   EVENTS=a,b         more events for `perf stat` in the cpu mode (block:block_rq_issue, …)
# The cpu mode also counts, in the same window, the server's send syscalls (sendto, writev) and
# the TCP segments its sockets sent and received (ss), so that lines per send are measured in
# the same run as the CPU: they vary from run to run with how the arrivals bunch, and a
# `perf trace` run slows the server it traces and so changes them.
# Prints the generator's JSON line last; everything else goes to $OUT/everyday-*.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=$1
ARGS=$2
WHAT=${3:-cpu}
OUT=${OUT:-target/bench-compare}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
START=${START:-3}
WINDOW=${WINDOW:-10}
CHINWAG=${CHINWAG:-${CARGO_TARGET_DIR:-$PWD/target}/release/chinwag}
PORT=${PORT:-16667}

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "port $PORT is already in use; pick another with PORT=" >&2
    exit 1
fi
if [[ $SERVER != chinwag && ! -f "$OUT/$SERVER.conf" ]]; then
    # The peers' configurations exactly as bench/compare.sh writes them.
    eval "$(sed -n '/^write_configs() {/,/^}/p' bench/compare.sh)"
    write_configs
fi
case $SERVER in
chinwag)
    rm -rf "$OUT/chinwag-data"
    # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
    taskset -c 0 "$CHINWAG" serve --data-dir "$OUT/chinwag-data" --listen "127.0.0.1:$PORT" \
        --tls-listen "127.0.0.1:$((PORT + 30))" --sendq 1000000 --load-test ${SERVE_ARGS:-} >"$OUT/chinwag.log" 2>&1 &
    ;;
inspircd) taskset -c 0 inspircd --config "$OUT/inspircd.conf" --nofork --runasroot >"$OUT/inspircd.out" 2>&1 & ;;
ngircd) taskset -c 0 ngircd --config "$OUT/ngircd.conf" --nodaemon >"$OUT/ngircd.out" 2>&1 & ;;
*) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done

# name utime stime (clock ticks) for every thread of the server
threads() {
    for t in /proc/"$PID"/task/*; do
        # The name is in parentheses and may hold spaces: fields count from after it.
        local stat name
        stat=$(cat "$t/stat" 2>/dev/null) || continue
        name=${stat#*(}
        name=${name%%)*}
        read -r -a f <<<"${stat##*) }"
        echo "${t##*/} ${name// /_} ${f[11]} ${f[12]}"
    done
}

# TCP segments out, of them with data, and in, summed over the server's sockets
segments() {
    ss -tin "sport = :$PORT" | grep -o '\(data_\)\?segs_\(out\|in\):[0-9]*' |
        awk -F: '{s[$1]+=$2} END {printf "%d %d %d\n", s["segs_out"], s["data_segs_out"], s["segs_in"]}'
}

# shellcheck disable=SC2086
taskset -c 1 "$CHINWAG" bench $ARGS --target "127.0.0.1:$PORT" --server-pid "$PID" --label "$SERVER" \
    --duration 180 >"$OUT/everyday-bench.txt" 2>&1 &
BENCH=$!
sleep "$START"
threads >"$OUT/everyday-threads-0"
segments >"$OUT/everyday-segments-0"
case $WHAT in
cpu) perf stat -e "task-clock,context-switches,cpu-migrations,page-faults,syscalls:sys_enter_sendto,syscalls:sys_enter_writev${EVENTS:+,$EVENTS}" -p "$PID" -- sleep "$WINDOW" \
    2>"$OUT/everyday-perfstat.txt" ;;
trace) perf trace -s -p "$PID" -- sleep "$WINDOW" >"$OUT/everyday-trace.txt" 2>&1 ;;
record) perf record -q -e cpu-clock -F 4999 -g -p "$PID" -o "$OUT/everyday-perf.data" -- sleep "$WINDOW" 2>/dev/null ;;
esac
threads >"$OUT/everyday-threads-1"
segments >"$OUT/everyday-segments-1"
wait $BENCH || true
echo "== per thread over the ${WINDOW}s window (ms of CPU: user, kernel)"
join <(sort "$OUT/everyday-threads-0") <(sort "$OUT/everyday-threads-1") |
    awk -v hz="$(getconf CLK_TCK)" '{u=($6-$3)*1000/hz; s=($7-$4)*1000/hz; if (u+s>0) printf "  %-16s %7.0f %7.0f\n", $2, u, s; tu+=u; ts+=s}
        END {printf "  %-16s %7.0f %7.0f\n", "all", tu, ts}'
case $WHAT in
cpu)
    grep -E "task-clock|context-switches|cpu-migrations|page-faults|:" "$OUT/everyday-perfstat.txt" | sed 's/^/  /'
    read -r o0 d0 i0 <"$OUT/everyday-segments-0"
    read -r o1 d1 i1 <"$OUT/everyday-segments-1"
    echo "  TCP segments over the window: $((o1 - o0)) out ($((d1 - d0)) with data), $((i1 - i0)) in"
    ;;
trace) grep -vE "^\s*$" "$OUT/everyday-trace.txt" | sed 's/^/  /' ;;
record) echo "  perf data: $OUT/everyday-perf.data" ;;
esac
grep -v '^{' "$OUT/everyday-bench.txt" | sed 's/^/  /'
grep '^{' "$OUT/everyday-bench.txt" || true
