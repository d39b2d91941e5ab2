#!/bin/sh
# Runs each fuzz target for $1 seconds (default 60), or only the targets named after it:
#   fuzz/run.sh 60            # parse, then core
#   fuzz/run.sh 300 core      # only core, five minutes
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
# Needs `cargo install cargo-fuzz`. The seeds in fuzz/corpus/<target> are committed and only
# read; what the fuzzer finds goes to fuzz/target/corpus/<target>, kept between runs. A crash
# fails the run and leaves its input in fuzz/artifacts/<target>.
set -eu
cd "$(dirname "$0")/.."
seconds="${1:-60}"
[ $# -gt 0 ] && shift
targets="${*:-parse core}"
for target in $targets; do
    work="fuzz/target/corpus/$target"
    mkdir -p "$work"
    echo "== fuzz $target for $seconds s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$work" "fuzz/corpus/$target" -- -max_total_time="$seconds"
done
