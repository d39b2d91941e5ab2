#!/bin/sh
# Runs the parser fuzz target for $1 seconds (default 60). cargo-fuzz needs nightly features;
# RUSTC_BOOTSTRAP=1 enables them on the stable toolchain. Needs `cargo install cargo-fuzz`.
set -eu
cd "$(dirname "$0")/.."
RUSTC_BOOTSTRAP=1 cargo fuzz run parse -- -max_total_time="${1:-60}"
