#!/usr/bin/env bash
# GPU source cost in the real agent (issue #5: RSS growth from enabling the
# GPU source ≤ 3 MiB; first GPU sample ≤ 1 s after start).
#
#   bash scripts/bench-gpu.sh            # 30 s per run
#   BENCH_SECONDS=60 bash scripts/bench-gpu.sh
#
# Runs the release `tally agent` twice on this machine, the GPU source off
# and then replaying a generated recording of 8 H100s with 50 compute
# processes (their PIDs are 50 live `sleep` processes, so every PID is
# looked up in /proc/<pid>/cgroup as on a GPU node). Reports each run's
# RSS after BENCH_SECONDS (VmRSS) and peak (VmHWM), CPU ms per second
# (utime+stime), and for the GPU run the time from exec to the first
# tally_gpu_ series on /metrics. No GPU needed: NVML's own call cost is
# measured by `tally gpu-check` on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${BENCH_SECONDS:-30}
PORT=${BENCH_AGENT_PORT:-19471}
cargo build --release --quiet --bin tally
TALLY=target/release/tally
WORK=$(mktemp -d /tmp/tally-bench-gpu.XXXXXX)
SLEEPERS=()
cleanup() {
  for pid in "${SLEEPERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 50); do sleep 3600 & SLEEPERS+=($!); done
python3 - "$WORK/gpus.json" "${SLEEPERS[@]}" <<'PY'
import json, sys
out, pids = sys.argv[1], [int(p) for p in sys.argv[2:]]
def device(i, t):
    mine = [p for n, p in enumerate(pids) if n % 8 == i]
    return {
        "index": i, "uuid": f"GPU-{i:08x}-0000-4000-8000-000000000000",
        "name": "NVIDIA H100 80GB HBM3", "pci_bus_id": f"00000000:{0x18 + i:02X}:00.0",
        "mig_enabled": False, "utilization_gpu_percent": 60, "utilization_memory_percent": 20,
        "memory_used_bytes": 40 << 30, "memory_free_bytes": 40 << 30, "memory_total_bytes": 80 << 30,
        "power_milliwatts": 400000, "power_limit_milliwatts": 700000,
        "energy_millijoules": 1000000 + t, "temperature_celsius": 55,
        "sm_clock_mhz": 1980, "memory_clock_mhz": 2619, "throttle_reasons": ["sw_power_cap"],
        "pcie_tx_bytes_per_second": 1 << 20, "pcie_rx_bytes_per_second": 1 << 22,
        "pcie_replays": 0, "ecc_corrected": 0, "ecc_uncorrected": 0,
        "remapped_rows": 0, "remap_pending": False, "performance_state": 0,
        "processes": [{"pid": p, "used_memory_bytes": 2 << 30} for p in mine],
        "process_utilization": [{"pid": p, "sm_percent": 30, "memory_percent": 5, "timestamp_us": t * 1000} for p in mine],
    }
frames = [{"time_ms": 1000 * t, "driver_version": "580.82.07", "devices": [device(i, t) for i in range(8)]} for t in range(2)]
json.dump({"version": 1, "source": "generated", "description": "scripts/bench-gpu.sh", "frames": frames}, open(out, "w"))
PY

run() { # $1 = label, remaining = env assignments
  local label=$1; shift
  local log="$WORK/$label.log" start now pid first=""
  start=$(date +%s%N)
  env "$@" TALLY_KUBERNETES_MODE=off TALLY_SPOOL_DIR="$WORK/spool-$label" \
    "$TALLY" agent --listen "127.0.0.1:$PORT" 2>"$log" &
  pid=$!
  for _ in $(seq 200); do
    if curl -sf "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -q '^tally_gpu_'; then
      first=$(( ($(date +%s%N) - start) / 1000000 )); break
    fi
    if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && [ "$label" = off ]; then break; fi
    sleep 0.02
  done
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
  sleep "$SECONDS_TO_RUN"
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
  local rss hwm hz cpu
  rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
  hz=$(getconf CLK_TCK)
  cpu=$(python3 -c "print(f'{(($u1+$s1)-($u0+$s0))/$hz*1000/$SECONDS_TO_RUN:.2f}')")
  curl -s "http://127.0.0.1:$PORT/metrics" > "$WORK/$label.metrics"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$label rss_kib=$rss hwm_kib=$hwm cpu_ms_per_s=$cpu first_gpu_ms=${first:-none} gpu_series=$(grep -c '^tally_gpu_\|^tally_container_gpu_' "$WORK/$label.metrics" || true)"
}

echo "bench-gpu: $SECONDS_TO_RUN s per run, 8 GPUs, 50 processes (replay)"
OFF=$(run off TALLY_GPU_MODE=off)
ON=$(run replay TALLY_GPU_MODE=replay TALLY_GPU_REPLAY_FILE="$WORK/gpus.json")
echo "$OFF"
echo "$ON"
python3 - "$OFF" "$ON" <<'PY'
import sys
def parse(line):
    return dict(kv.split("=") for kv in line.split()[1:])
off, on = parse(sys.argv[1]), parse(sys.argv[2])
print(f"bench-gpu: RSS growth from the GPU source {int(on['rss_kib']) - int(off['rss_kib']):+d} KiB "
      f"(peak {int(on['hwm_kib']) - int(off['hwm_kib']):+d} KiB); CPU {float(on['cpu_ms_per_s']) - float(off['cpu_ms_per_s']):+.2f} ms/s; "
      f"first GPU sample {on['first_gpu_ms']} ms after exec")
PY
