#!/usr/bin/env bash
# Agent overhead benchmark, with node_exporter measured in the same run.
#
#   sudo bash scripts/bench-agent.sh            # 120 s, 100 containers
#   BENCH_SECONDS=30 BENCH_CONTAINERS=50 sudo bash scripts/bench-agent.sh
#   BENCH_WORKLOAD=busy sudo bash scripts/bench-agent.sh
#
# BENCH_WORKLOAD=idle (default) puts a `sleep` in each container; busy puts
# a python loop that allocates and frees memory and burns a little CPU
# every second, so every container's memory changes between samples (the
# agent's worst case: it re-reads memory.stat for each of them).
# Creates BENCH_CONTAINERS real cgroups (Kubernetes cgroupfs naming) each
# holding a live process, runs the release `tally agent` at 1 s sampling
# and 15 s export (to a local OTLP sink) and Debian's
# prometheus-node-exporter, scrapes both every second for BENCH_SECONDS,
# and reports per process: CPU in ms per second (utime+stime from
# /proc/<pid>/stat), peak RSS (VmHWM), mean scrape time and body size.
# Also reports the agent's time from exec to /readyz answering 200.
# Needs root (cgroups); prints one summary block at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${BENCH_SECONDS:-120}
CONTAINERS=${BENCH_CONTAINERS:-100}
AGENT_PORT=${BENCH_AGENT_PORT:-19470}
NE_PORT=${BENCH_NE_PORT:-19100}
SINK_PORT=${BENCH_SINK_PORT:-14318}
CG=/sys/fs/cgroup

[ "$(id -u)" = 0 ] || { echo "bench-agent: needs root to create cgroups" >&2; exit 1; }
bash scripts/install-test-peers.sh >/dev/null
cargo build --release --quiet --bin tally
TALLY=target/release/tally

WORK=$(mktemp -d /tmp/tally-bench.XXXXXX)
PIDS=()
DIRS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Deepest first; a cgroup can only be removed once empty.
  for ((i=${#DIRS[@]}-1; i>=0; i--)); do rmdir "${DIRS[$i]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# This process's own cgroup, so the bench cgroups stay inside any limit the
# machine places on us; the same relative path is used in every hierarchy.
if [ -f $CG/cgroup.controllers ]; then
  HIERARCHIES=("$CG")
  BASE=$(awk -F: '$1=="0"{print $3}' /proc/self/cgroup)
else
  HIERARCHIES=()
  for c in cpu cpuacct memory blkio; do [ -d "$CG/$c" ] && HIERARCHIES+=("$(readlink -f $CG/$c)"); done
  BASE=$(awk -F: '$2 ~ /(^|,)memory(,|$)/{print $3}' /proc/self/cgroup)
fi
mapfile -t HIERARCHIES < <(printf '%s\n' "${HIERARCHIES[@]}" | sort -u)
TOP="${BASE%/}/tally-bench-$$"

echo "bench: creating $CONTAINERS cgroups with a live process each"
for ((i=0; i<CONTAINERS; i++)); do
  uid=$(printf '%08x-0000-4000-8000-%012x' $$ "$i")
  id=$(printf '%064x' $((0xbe0c0000 + i)))
  rel="$TOP/kubepods/burstable/pod$uid/$id"
  if [ "${BENCH_WORKLOAD:-idle}" = busy ]; then
    python3 -c 'import time
while True:
    b = bytearray(int((1 + time.time() % 2) * 1048576)); b[::4096] = b"x" * len(b[::4096])
    time.sleep(1)' &
  else
    sleep 100000 &
  fi
  pid=$!
  PIDS+=("$pid")
  for h in "${HIERARCHIES[@]}"; do
    mkdir -p "$h$rel"
    echo "$pid" > "$h$rel/cgroup.procs"
  done
done
for h in "${HIERARCHIES[@]}"; do
  DIRS+=("$h$TOP" "$h$TOP/kubepods" "$h$TOP/kubepods/burstable")
  for d in "$h$TOP"/kubepods/burstable/pod*; do DIRS+=("$d"); for c in "$d"/*/; do DIRS+=("${c%/}"); done; done
done

# Let busy containers finish starting so the agent's start is not timed
# against 100 interpreters loading at once.
[ "${BENCH_WORKLOAD:-idle}" = busy ] && sleep 10

# A minimal OTLP sink so the export path (encode, gzip, spool, POST) runs.
cat > "$WORK/sink.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Sink).serve_forever()
PY
python3 "$WORK/sink.py" "$SINK_PORT" & PIDS+=($!)

now_ns() { date +%s%N; }
start_ns=$(now_ns)
TALLY_SPOOL_DIR="$WORK/spool" TALLY_LOG_FORMAT=json TALLY_KUBERNETES_MODE=off \
  "$TALLY" agent --listen "127.0.0.1:$AGENT_PORT" --collector "http://127.0.0.1:$SINK_PORT" \
  2> "$WORK/agent.log" &
AGENT=$!; PIDS+=("$AGENT")
until curl -sf "http://127.0.0.1:$AGENT_PORT/readyz" >/dev/null; do sleep 0.002; done
ready_ms=$(( ($(now_ns) - start_ns) / 1000000 ))

prometheus-node-exporter --web.listen-address="127.0.0.1:$NE_PORT" 2> "$WORK/ne.log" &
NE=$!; PIDS+=("$NE")
until curl -sf "http://127.0.0.1:$NE_PORT/metrics" >/dev/null; do sleep 0.01; done

discovered=$(curl -s "http://127.0.0.1:$AGENT_PORT/metrics" | awk '/^tally_agent_cgroups_discovered\{.*runtime="cri"/{print $2}')
echo "bench: agent ready in ${ready_ms} ms, sees ${discovered} cri containers; running ${SECONDS_TO_RUN}s"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

a0=$(cpu_ticks "$AGENT"); n0=$(cpu_ticks "$NE"); t0=$(now_ns)
agent_time=0; ne_time=0; agent_bytes=0; ne_bytes=0; scrapes=0
for ((s=0; s<SECONDS_TO_RUN; s++)); do
  tick=$(now_ns)
  read -r at ab < <(curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$AGENT_PORT/metrics")
  read -r nt nb < <(curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$NE_PORT/metrics")
  agent_time=$(echo "$agent_time + $at" | bc -l); ne_time=$(echo "$ne_time + $nt" | bc -l)
  agent_bytes=$ab; ne_bytes=$nb; scrapes=$((scrapes + 1))
  left=$(( 1000000000 - ($(now_ns) - tick) ))
  [ "$left" -gt 0 ] && sleep "$(echo "$left / 1000000000" | bc -l)"
done
a1=$(cpu_ticks "$AGENT"); n1=$(cpu_ticks "$NE"); t1=$(now_ns)
elapsed=$(echo "($t1 - $t0) / 1000000000" | bc -l)

agent_ms=$(echo "($a1 - $a0) * 1000 / $HZ / $elapsed" | bc -l)
ne_ms=$(echo "($n1 - $n0) * 1000 / $HZ / $elapsed" | bc -l)
agent_rss=$(hwm_kb "$AGENT"); ne_rss=$(hwm_kb "$NE")
exports=$(curl -s "http://127.0.0.1:$AGENT_PORT/metrics" | awk '/^tally_agent_otlp_exports_total\{.*outcome="success"/{print $2}')

printf '\n== tally agent vs node_exporter: %d %s containers, %.0f s, 1 s sampling, 15 s export, 1 s scrapes (%s)\n' \
  "$CONTAINERS" "${BENCH_WORKLOAD:-idle}" "$elapsed" "$(uname -r)"
printf '%-22s %12s %12s %16s %14s\n' process "CPU ms/s" "peak RSS MiB" "scrape ms (mean)" "body bytes"
printf '%-22s %12.2f %12.1f %16.2f %14d\n' "tally agent" "$agent_ms" "$(echo "$agent_rss/1024" | bc -l)" "$(echo "$agent_time*1000/$scrapes" | bc -l)" "$agent_bytes"
printf '%-22s %12.2f %12.1f %16.2f %14d\n' "node_exporter" "$ne_ms" "$(echo "$ne_rss/1024" | bc -l)" "$(echo "$ne_time*1000/$scrapes" | bc -l)" "$ne_bytes"
printf 'RSS ratio agent/node_exporter: %.2f (target <= 0.5)\n' "$(echo "$agent_rss/$ne_rss" | bc -l)"
printf 'agent CPU: %.2f ms/s (target <= 5)\n' "$agent_ms"
printf 'agent ready after %d ms (target <= 200)\n' "$ready_ms"
printf 'OTLP exports acknowledged: %s\n' "${exports:-0}"
