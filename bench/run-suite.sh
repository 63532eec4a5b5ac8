#!/usr/bin/env bash
# Runs `weft bench suite` with the fully optimised build (`--profile dist`, fat LTO) and
# writes BENCHMARKS.md, bench/suite-<channel>.svg and bench/results.json. Arguments go to
# the suite, e.g.:
#
#   bench/run-suite.sh                                   # sqlite, the default
#   bench/run-suite.sh --channel sqlite --channel memory # one more backend: one more argument
#   bench/run-suite.sh --duration 10s --rates 500,1000,2000,4000,8000,16000
#
# The binary is copied out of target/ first, so that a rebuild during the run (another
# engineer's, CI's) cannot swap it under the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --profile dist --bin weft
bin_dir="$(mktemp -d)"
trap 'rm -rf "$bin_dir"' EXIT
cp target/dist/weft "$bin_dir/weft"

echo "machine: $(nproc) cores, $(free -h | awk '/^Mem:/ {print $2}') memory; $(uptime)" >&2
"$bin_dir/weft" bench suite --out BENCHMARKS.md --charts-dir bench "$@"
echo "after: $(uptime)" >&2
