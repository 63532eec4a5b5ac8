#!/usr/bin/env bash
# Profiles `weft up` during a `weft bench e2e` run, to explain a figure in BENCHMARKS.md.
#
#   bench/profile-e2e.sh [SECONDS] -- [weft bench e2e arguments]
#   bench/profile-e2e.sh 8 -- --channel sqlite --rate 1000   (the run lasts SECONDS + 6 s)
#
# It starts the run, then records `weft up` with perf for SECONDS (default 8). perf -p does
# not follow the threads of this build, so all thread ids are passed with -t. Then it prints
# the CPU split by thread, by shared object and by symbol (self time), and the inclusive time
# of the data-plane frames. It needs the `dist` build (target/dist/weft; bench/run-suite.sh
# makes one) and perf (`apt-get install linux-perf`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=8
if [[ $# -gt 0 && $1 != -- ]]; then secs=$1; shift; fi
[[ ${1:-} == -- ]] && shift

out="$(mktemp -d)"
cp target/dist/weft "$out/weft"
"$out/weft" bench e2e --no-progress --duration "$((secs + 6))s" "$@" >"$out/report.txt" &
bench=$!
# Give weft time to start and the warm-up time to pass.
sleep 4
weft_pid="$(pgrep -P "$bench" | head -1)"
tids="$(ls "/proc/$weft_pid/task" | paste -sd,)"
echo "load: $(uptime)"
perf record -q -F 999 -e cpu-clock --call-graph dwarf,16384 -t "$tids" -o "$out/perf.data" \
    -- sleep "$secs" 2>/dev/null
wait "$bench" || true
cat "$out/report.txt"

# `head` closes the pipes early; that is not a failure.
set +o pipefail
report() { perf report -i "$out/perf.data" --stdio -g none "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
echo; echo "== by thread"; report --no-children --sort comm | head -8
echo; echo "== by shared object"; report --no-children --sort dso | head -8
echo; echo "== by symbol (self)"; report --no-children --sort sym | head -25
echo; echo "== data-plane frames (inclusive)"
report --children --sort sym \
    | grep -E 'axum::serve::handle_connection|weft_channels::.*(Writer::run|Subscription>::next)|weft_broker::dispatcher::Dispatcher::(run|deliver)|HttpSink as|_int_malloc|_int_free|__x64_sys_futex|__GI___writev|sqlite3VdbeExec|sqlite3_step|fsync|fdatasync' \
    | grep -v '(inlined)' | cut -c1-150 | head -20
echo; echo "perf data: $out/perf.data"
