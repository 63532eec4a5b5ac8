#!/usr/bin/env bash
# The backends' own append rates on this machine, beside `weft bench suite` (BENCHMARKS.md,
# "Backends (issue 5)"), so that the overhead Weft adds is visible:
#
#   bench/native.sh [NATS_URL] [KAFKA_URL] [POSTGRES_URL]
#
# - NATS: channels/examples/nats_publish.rs (32 tasks, each publishing one message and
#   awaiting its PubAck; a stream configured as Weft configures a broker's).
# - Kafka: channels/examples/kafka_native.rs (32 tasks, each producing one record with
#   acks=all from an idempotent producer and awaiting it; 10 partitions; the channel's
#   linger.ms=0 beside the old 0.5; 3 alternating rounds of 10 s; then 1,024 in flight),
#   and channels/examples/kafka_produce.rs (its `native` loop still uses linger.ms=0.5;
#   `channel` is KafkaChannel::append without HTTP).
# - PostgreSQL: pgbench with bench/pg-native-append.sql, 32 clients, 10 s: one 256-byte row
#   per transaction into a scratch table (bench_native_append), with the server's
#   synchronous_commit.
#
# Defaults are the loopback servers of `e2e/services/up postgres nats kafka`; the
# PostgreSQL database must exist (CREATE DATABASE weft_bench).
set -euo pipefail
cd "$(dirname "$0")/.."
nats="${1:-nats://127.0.0.1:14222}"
kafka="${2:-kafka://127.0.0.1:19092}"
pg="${3:-postgres://postgres@127.0.0.1:15432/weft_bench}"

cargo build --profile dist -p weft-channels --example nats_publish --example kafka_produce \
    --example kafka_native
bin_dir="$(mktemp -d)"
trap 'rm -rf "$bin_dir"' EXIT
cp target/dist/examples/{nats_publish,kafka_produce,kafka_native} "$bin_dir/"

echo "== nats_publish $nats; $(uptime)"
"$bin_dir/nats_publish" "$nats"
echo "== kafka_native $kafka 32 10 10; $(uptime)"
"$bin_dir/kafka_native" "$kafka" 32 10 10
echo "== kafka_produce $kafka 32 10 10; $(uptime)"
"$bin_dir/kafka_produce" "$kafka" 32 10 10
echo "== pgbench $pg; $(uptime)"
psql "$pg" -X -q -v ON_ERROR_STOP=1 \
    -c 'CREATE TABLE IF NOT EXISTS bench_native_append (id bigserial PRIMARY KEY, data text NOT NULL)' \
    -c 'TRUNCATE bench_native_append'
psql "$pg" -X -At -c 'SELECT $$synchronous_commit = $$ || current_setting($$synchronous_commit$$)'
pgbench -n -M prepared -c 32 -j 2 -T 10 -f bench/pg-native-append.sql "$pg"
echo "== after: $(uptime)"
