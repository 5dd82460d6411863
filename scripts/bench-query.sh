#!/usr/bin/env bash
# Query benchmark over HTTP, on a collector filled by `tally simulate`.
#
#   bash scripts/bench-query.sh                       # 200 nodes, 14 days at 15-minute steps
#   BENCH_NODES=50 BENCH_STEP=1h bash scripts/bench-query.sh
#
# 1. A release `tally collector` is filled with BENCH_BACKFILL (14d) of a
#    BENCH_NODES-node simulated fleet at BENCH_STEP steps.
# 2. The two questions right-sizing asks, for every container, over the
#    whole window: p95 of sampled CPU and max of working-set memory, each
#    through /api/v1/query, BENCH_RUNS times; curl's total time is reported
#    (median and max), with the container count.
# 3. The collector is stopped (a snapshot is written) and started again;
#    the time until /readyz answers is the restart time.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${BENCH_NODES:-200}
BACKFILL=${BENCH_BACKFILL:-14d}
STEP=${BENCH_STEP:-15m}
RUNS=${BENCH_RUNS:-10}
PORT=${BENCH_COLLECTOR_PORT:-14610}

cargo build --release --quiet --bin tally
TALLY=target/release/tally
WORK=$(mktemp -d /tmp/tally-query-bench.XXXXXX)
C=""
cleanup() { [ -n "$C" ] && kill "$C" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
now_ns() { date +%s%N; }
start_collector() {
  "$TALLY" collector --listen "127.0.0.1:$PORT" --data-dir "$WORK/collector" 2>> "$WORK/collector.log" &
  C=$!
  until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.02; done
}

start_collector
t0=$(now_ns)
"$TALLY" simulate --collector "http://127.0.0.1:$PORT" --nodes "$NODES" --seed 1 \
  --backfill "$BACKFILL" --step "$STEP" 2> "$WORK/simulate.log"
t1=$(now_ns)
echo "filled: $(grep -o '[0-9]* points' "$WORK/simulate.log" | head -1) in $(( (t1 - t0) / 1000000000 )) s"

query() {
  local metric=$1 stat=$2 times=()
  for _ in $(seq "$RUNS"); do
    times+=("$(curl -s -o "$WORK/answer.json" -w '%{time_total}' \
      "http://127.0.0.1:$PORT/api/v1/query?metric=$metric&stat=$stat&window=$BACKFILL")")
  done
  local n
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["results"]))' "$WORK/answer.json")
  printf '%s\n' "${times[@]}" | sort -n | awk -v m="$metric" -v s="$stat" -v n="$n" -v w="$BACKFILL" \
    '{a[NR]=$1} END {printf "%s of %s over %s for %d containers: median %.1f ms, max %.1f ms\n", s, m, w, n, a[int((NR+1)/2)]*1000, a[NR]*1000}'
}
query tally_container_cpu_usage_sampled_cores p95
query tally_container_memory_working_set_bytes max
series=$(curl -s "http://127.0.0.1:$PORT/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["series"])')
rss_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$C/status")
echo "collector: $series series, RSS $(( rss_kb / 1024 )) MiB = $(( rss_kb * 1024 / series )) B per series"

kill -TERM "$C"; wait "$C" || true
s0=$(now_ns)
start_collector
s1=$(now_ns)
echo "restart (snapshot load + log replay) until /readyz: $(( (s1 - s0) / 1000000 )) ms; snapshot $(du -h "$WORK/collector/snapshot.bin" | cut -f1)"
rss_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$C/status")
echo "collector after restart (no ingest garbage): RSS $(( rss_kb / 1024 )) MiB = $(( rss_kb * 1024 / series )) B per series"
