#!/usr/bin/env bash
# Collector ingest benchmark, with VictoriaMetrics measured in the same run.
#
#   bash scripts/bench-collector.sh            # 50 nodes, 12 h of 1-minute steps
#   BENCH_NODES=100 BENCH_BACKFILL=24h bash scripts/bench-collector.sh
#
# 1. `tally simulate --backfill` pushes a seeded fleet to a release
#    `tally collector` over OTLP/HTTP (gzip protobuf, every request fsynced
#    to the write-ahead log before it is acknowledged).
# 2. The same seed and steps are written as Prometheus text with
#    timestamps and imported into Debian's VictoriaMetrics single node
#    through /api/v1/import/prometheus.
# Reported per process: points per second of wall time, points per CPU
# second (utime+stime from /proc), and collector RSS per active series.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${BENCH_NODES:-50}
BACKFILL=${BENCH_BACKFILL:-12h}
STEP=${BENCH_STEP:-1m}
PORT=${BENCH_COLLECTOR_PORT:-14600}
VM_PORT=${BENCH_VM_PORT:-18428}

command -v victoria-metrics >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends victoria-metrics >/dev/null
}
cargo build --release --quiet --bin tally
TALLY=target/release/tally
WORK=$(mktemp -d /tmp/tally-collector-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now_ns() { date +%s%N; }

# A short snapshot interval, so the store's history goes cold soon after
# the backfill, as it would within 5 minutes in a running collector.
TALLY_COLLECTOR_SNAPSHOT_INTERVAL=${BENCH_SNAPSHOT_INTERVAL:-20s} \
  "$TALLY" collector --listen "127.0.0.1:$PORT" --data-dir "$WORK/collector" 2> "$WORK/collector.log" &
C=$!; PIDS+=("$C")
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.05; done
c0=$(ticks "$C"); t0=$(now_ns)
"$TALLY" simulate --collector "http://127.0.0.1:$PORT" --nodes "$NODES" --seed 1 --backfill "$BACKFILL" --step "$STEP" 2> "$WORK/simulate.log"
t1=$(now_ns); c1=$(ticks "$C")
points=$(grep -o '[0-9]* points' "$WORK/simulate.log" | head -1 | awk '{print $1}')
series=$(curl -s "http://127.0.0.1:$PORT/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["series"])')
rss_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$C/status")
# RSS once a snapshot has moved the sealed history to its file, then after a
# restart from that snapshot (the store alone, without what the allocator
# kept from the burst).
snapshots() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tally_collector_snapshots_total /{print $2}'; }
before=$(snapshots)
until [ "$(snapshots)" != "$before" ]; do sleep 1; done
sleep 1
cold_rss_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$C/status")
store_bytes=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tally_collector_store_bytes /{print $2}')
kill -INT "$C"; wait "$C" 2>/dev/null || true
"$TALLY" collector --listen "127.0.0.1:$PORT" --data-dir "$WORK/collector" 2>> "$WORK/collector.log" &
C=$!; PIDS+=("$C")
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.05; done
restart_rss_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$C/status")
kill -INT "$C"; wait "$C" 2>/dev/null || true

"$TALLY" simulate --collector "http://127.0.0.1:$PORT" --nodes "$NODES" --seed 1 --backfill "$BACKFILL" --step "$STEP" \
  --dump-prometheus "$WORK/points.prom" 2>/dev/null
lines=$(wc -l < "$WORK/points.prom")
victoria-metrics -httpListenAddr="127.0.0.1:$VM_PORT" -storageDataPath="$WORK/vm" -retentionPeriod=100y \
  -search.latencyOffset=0s > "$WORK/vm.log" 2>&1 &
V=$!; PIDS+=("$V")
until curl -sf "http://127.0.0.1:$VM_PORT/health" >/dev/null; do sleep 0.05; done
v0=$(ticks "$V"); s0=$(now_ns)
# -T streams the file (--data-binary loads it whole, which fails past 2 GiB).
curl -sf -X POST -T "$WORK/points.prom" "http://127.0.0.1:$VM_PORT/api/v1/import/prometheus"
curl -sf "http://127.0.0.1:$VM_PORT/internal/force_flush" >/dev/null
s1=$(now_ns); v1=$(ticks "$V")

python3 - "$points" "$t0" "$t1" "$c0" "$c1" "$lines" "$s0" "$s1" "$v0" "$v1" "$HZ" "$series" "$rss_kb" \
  "$cold_rss_kb" "$restart_rss_kb" "$store_bytes" "$NODES" "$BACKFILL" "$STEP" <<'PY'
import sys
points, t0, t1, c0, c1, lines, s0, s1, v0, v1, hz, series, rss_kb, cold_rss_kb, restart_rss_kb, store_bytes = map(int, sys.argv[1:17])
nodes, backfill, step = sys.argv[17:20]
wall = (t1 - t0) / 1e9; cpu = (c1 - c0) / hz
vwall = (s1 - s0) / 1e9; vcpu = max((v1 - v0) / hz, 1 / hz)
print(f"\n== collector ingest vs VictoriaMetrics import: {nodes} simulated nodes, {backfill} at {step} steps")
print(f"tally collector : {points} points in {wall:.1f} s wall = {points / wall:,.0f} points/s; "
      f"{cpu:.1f} CPU s = {points / max(cpu, 1e-9):,.0f} points per CPU second")
print(f"VictoriaMetrics : {lines} samples in {vwall:.1f} s wall = {lines / vwall:,.0f} samples/s; "
      f"{vcpu:.1f} CPU s = {lines / vcpu:,.0f} samples per CPU second")
per = lambda kb: f"{kb / 1024:.0f} MiB = {kb * 1024 / max(series, 1) / 1024:.2f} KiB per series"
print(f"collector RSS for {series} series (target <= 2 KiB per series):")
print(f"  right after the backfill          {per(rss_kb)}")
print(f"  after the next snapshot           {per(cold_rss_kb)} (store estimate {store_bytes / max(series, 1):.0f} B per series)")
print(f"  restarted from that snapshot      {per(restart_rss_kb)}")
PY
