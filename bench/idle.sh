#!/usr/bin/env bash
# Measures an idle `weft up`: CPU seconds spent and RSS, with many brokers and triggers and
# no events, to explain the suite's idle figures in BENCHMARKS.md.
#
#   bench/idle.sh [BROKERS] [TRIGGERS] [SECONDS] [WEFT-BINARY]
#   bench/idle.sh 100 1000 20                 (defaults; target/dist/weft: cargo build --profile dist)
#
# It writes one manifest per broker (its triggers beside it, subscribers that are never
# called), starts `weft up` on a fresh data dir, waits until every trigger is ready, lets it
# settle for 5 s, then reads utime+stime from /proc over SECONDS and RSS (anonymous and
# file-backed) at the end. Prints one line: brokers, triggers, CPU s per 10 s idle, RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
brokers=${1:-100}
triggers=${2:-1000}
secs=${3:-20}
bin=${4:-target/dist/weft}

dir="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir "$dir/manifests"
for ((b = 0; b < brokers; b++)); do
    {
        printf 'apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b%d}\n' "$b"
        mine=$((triggers / brokers + (b < triggers % brokers ? 1 : 0)))
        for ((t = 0; t < mine; t++)); do
            printf -- '---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\n'
            printf 'metadata: {name: b%d-t%d}\nspec:\n  broker: b%d\n' "$b" "$t" "$b"
            printf '  subscriber: {uri: "http://127.0.0.1:9/b%d/t%d"}\n' "$b" "$t"
        done
    } >"$dir/manifests/b$b.yaml"
done

"$bin" up -f "$dir/manifests" --data-dir "$dir/data" --addr 127.0.0.1:0 \
    --admin-addr 127.0.0.1:0 >"$dir/out" 2>"$dir/err" &
pid=$!
admin=""
for _ in $(seq 600); do
    # `weft admin on` comes first; `weft listening on` says both are served.
    grep -q '^weft listening on http://' "$dir/out" &&
        admin="$(sed -n 's|^weft admin on http://||p' "$dir/out" | head -1)"
    [[ -n $admin ]] && break
    sleep 0.1
done
[[ -n $admin ]] || { echo "weft did not start:" >&2; cat "$dir/err" >&2; exit 1; }
for _ in $(seq 600); do
    ready="$("$bin" get triggers --admin-addr "$admin" 2>/dev/null | awk '$4 == "True"' | wc -l)"
    [[ $ready -ge $triggers ]] && break
    sleep 0.5
done
sleep 5

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
before="$(ticks)"
sleep "$secs"
after="$(ticks)"
anon="$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")"
file="$(awk '/^RssFile/ {print $2}' "/proc/$pid/status")"
awk -v b="$brokers" -v t="$triggers" -v s="$secs" -v d="$((after - before))" -v hz="$hz" \
    -v anon="$anon" -v file="$file" 'BEGIN {
    printf "brokers %d, triggers %d: %.3f CPU s per 10 s idle; RSS %.1f MiB (anon %.1f, file %.1f)\n",
        b, t, d / hz / s * 10, (anon + file) / 1024, anon / 1024, file / 1024
}'
