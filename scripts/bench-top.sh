#!/usr/bin/env bash
# `tally top` against a 1,000-node simulated fleet (issue #9 targets):
#   - start to first full screen (the overview with its data) ≤ 300 ms,
#   - memory of the dashboard ≤ 50 MiB (VmHWM, the peak RSS).
# A real collector on loopback is filled by `tally simulate --nodes 1000`
# (two real-time batches) and analysed; then `tally top` runs in a real
# terminal (tmux, 160x48) five times. The first full screen is the first
# capture showing the top recommendations with rows, polled every 5 ms
# from the moment tmux starts the process.
#
#   bash scripts/bench-top.sh            # builds target/release/tally
#   TALLY_BIN=path/to/tally bash scripts/bench-top.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
BIN="${TALLY_BIN:-$target/release/tally}"
if [ -z "${TALLY_BIN:-}" ]; then
  cargo build --release --bin tally
fi
command -v tmux >/dev/null || { echo "bench-top: tmux is missing (scripts/install-test-peers.sh)" >&2; exit 1; }
NODES="${NODES:-1000}"
dir="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
socket="tally-bench-top-$$"
cleanup() {
  tmux -L "$socket" kill-server 2>/dev/null || true
  if [ -n "${collector:-}" ]; then
    kill "$collector" 2>/dev/null || true
    wait "$collector" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

"$BIN" collector --listen "127.0.0.1:$port" --data-dir "$dir/data" 2>"$dir/collector.log" &
collector=$!
for _ in $(seq 100); do curl -fs "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" simulate --collector "$url" --nodes "$NODES" --step 15s --ticks 2 2>"$dir/simulate.log"
curl -fs -X POST "$url/api/v1/analyze" >/dev/null
echo "fleet: $NODES nodes; $(curl -fs "$url/api/v1/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["series"], "series,", d["analyzer"]["recommendations"], "recommendations")')"
echo "API payload of one refresh: $(for p in status agents nodes containers workloads 'costs?by=workload' gpus models 'costs?by=model' egress recommendations 'logs?limit=500'; do curl -fs "$url/api/v1/$p" | wc -c; done | awk '{s+=$1} END {printf "%.1f MiB", s/1048576}')"

for run in 1 2 3 4 5; do
  start=$(date +%s%N)
  tmux -L "$socket" -f /dev/null new-session -d -s top -x 160 -y 48 \
    "exec env NO_COLOR=1 $BIN top --collector $url --refresh 2"
  while :; do
    if tmux -L "$socket" capture-pane -p -t top 2>/dev/null | grep -q 'Top recommendations \[[1-9]'; then
      break
    fi
    now=$(date +%s%N)
    if [ $(( (now - start) / 1000000 )) -gt 30000 ]; then echo "no full screen in 30 s" >&2; exit 1; fi
    sleep 0.005
  done
  first_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  pid=$(tmux -L "$socket" display-message -p -t top '#{pane_pid}')
  # Several refreshes on the Workloads view (10,000 rows: the largest
  # table), then the peak.
  sleep 2
  tmux -L "$socket" send-keys -t top Tab Tab
  sleep 12
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  printf 'run %d: first full screen %4d ms, RSS %5.1f MiB, peak RSS %5.1f MiB\n' \
    "$run" "$first_ms" "$(echo "$rss/1024" | bc -l)" "$(echo "$hwm/1024" | bc -l)"
  tmux -L "$socket" kill-server
  # Let the collector finish the reads the dashboard left in flight.
  sleep 8
done
