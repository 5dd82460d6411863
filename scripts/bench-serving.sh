#!/usr/bin/env bash
# Model-server scraping cost in the real agent (issue #6: scraping 50
# targets every 10 s ≤ 1 % of one core).
#
#   bash scripts/bench-serving.sh              # 60 s per run
#   BENCH_SECONDS=120 bash scripts/bench-serving.sh
#
# A Python page server on loopback serves 50 vLLM-style /metrics pages
# (each the size of a real vLLM V1 page: ~130 series with its histograms,
# counters moving between scrapes). The release `tally agent` runs twice
# on this machine, without targets and then scraping all 50 every 10 s
# (the default interval); each run reports CPU ms per second
# (utime+stime) and RSS after BENCH_SECONDS. The difference is the cost
# of scraping, parsing, normalising and keeping the windows.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${BENCH_SECONDS:-60}
PORT=${BENCH_AGENT_PORT:-19472}
PAGES_PORT=${BENCH_PAGES_PORT:-19473}
TARGETS=50
cargo build --release --quiet --bin tally
TALLY=target/release/tally
WORK=$(mktemp -d /tmp/tally-bench-serving.XXXXXX)
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$PAGES_PORT" <<'PY' &
import http.server, socketserver, sys, time
port = int(sys.argv[1])
start = time.time()
TTFT = [0.001,0.005,0.01,0.02,0.04,0.06,0.08,0.1,0.25,0.5,0.75,1.0,2.5,5.0,7.5,10.0,20.0,40.0,80.0,160.0,640.0,2560.0]
ITL = [0.01,0.025,0.05,0.075,0.1,0.15,0.2,0.3,0.4,0.5,0.75,1.0,2.5,5.0,7.5,10.0,20.0,40.0,80.0]
E2E = [0.3,0.5,0.8,1.0,1.5,2.0,2.5,5.0,10.0,15.0,20.0,30.0,40.0,50.0,60.0,120.0,240.0,480.0,960.0,1920.0,7680.0]
def page(n):
    t = time.time() - start
    m = f'engine="0",model_name="model-{n}"'
    out = ["# HELP python_gc_objects_collected_total Objects collected during gc",
           "# TYPE python_gc_objects_collected_total counter"]
    out += [f'python_gc_objects_collected_total{{generation="{g}"}} {1000.0 + g}' for g in range(3)]
    for name, v in [("num_requests_running", 5), ("num_requests_waiting", 2), ("kv_cache_usage_perc", 0.4)]:
        out += [f"# HELP vllm:{name} x", f"# TYPE vllm:{name} gauge", f"vllm:{name}{{{m}}} {v}"]
    for name, rate in [("prompt_tokens", 1000), ("generation_tokens", 500)]:
        out += [f"# HELP vllm:{name}_total x", f"# TYPE vllm:{name}_total counter",
                f"vllm:{name}_total{{{m}}} {rate * t}", f"vllm:{name}_created{{{m}}} {start}"]
    out += ["# TYPE vllm:request_success_total counter"]
    out += [f'vllm:request_success_total{{{m},finished_reason="{r}"}} {k * t}' for r, k in [("stop", 40), ("length", 5), ("abort", 1)]]
    for name, bounds in [("time_to_first_token_seconds", TTFT), ("inter_token_latency_seconds", ITL),
                         ("request_time_per_output_token_seconds", ITL), ("e2e_request_latency_seconds", E2E),
                         ("request_queue_time_seconds", E2E)]:
        out += [f"# TYPE vllm:{name} histogram"]
        ticks = int(t * 10)
        for i, b in enumerate(bounds):
            out.append(f'vllm:{name}_bucket{{{m},le="{b}"}} {float(ticks * min(i, 8))}')
        out.append(f'vllm:{name}_bucket{{{m},le="+Inf"}} {float(ticks * 8)}')
        out.append(f"vllm:{name}_count{{{m}}} {float(ticks * 8)}")
        out.append(f"vllm:{name}_sum{{{m}}} {ticks * 0.8}")
    return ("\n".join(out) + "\n").encode()
class Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = page(self.path.strip("/").split("/")[0])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    # 50 targets connect at once; the default backlog of 5 would drop
    # connections (a real fleet is 50 servers, each with its own).
    request_queue_size = 256
Server(("127.0.0.1", port), Pages).serve_forever()
PY
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PAGES_PORT/0/metrics" >/dev/null && break; sleep 0.05; done
BYTES=$(curl -s "http://127.0.0.1:$PAGES_PORT/0/metrics" | wc -c)
SERIES=$(curl -s "http://127.0.0.1:$PAGES_PORT/0/metrics" | grep -vc '^#')

run() { # $1 = label, remaining = agent arguments
  local label=$1; shift
  local log="$WORK/$label.log" pid
  TALLY_KUBERNETES_MODE=off TALLY_GPU_MODE=off TALLY_SPOOL_DIR="$WORK/spool-$label" \
    "$TALLY" agent --listen "127.0.0.1:$PORT" "$@" 2>"$log" &
  pid=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.02
  done
  # The first scrape (and discovery) happen at start; measure from there.
  sleep 1
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
  sleep "$SECONDS_TO_RUN"
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
  local rss hz cpu up
  rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  hz=$(getconf CLK_TCK)
  cpu=$(python3 -c "print(f'{(($u1+$s1)-($u0+$s0))/$hz*1000/$SECONDS_TO_RUN:.2f}')")
  up=$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -c '^tally_agent_scrape_up{.* 1$' || true)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$label rss_kib=$rss cpu_ms_per_s=$cpu targets_up=$up"
}

ARGS=()
for n in $(seq 0 $((TARGETS - 1))); do ARGS+=(--scrape "http://127.0.0.1:$PAGES_PORT/$n/metrics"); done
echo "bench-serving: $SECONDS_TO_RUN s per run, $TARGETS vLLM-style targets every 10 s, $SERIES series and $BYTES bytes per page"
OFF=$(run none)
ON=$(run scraping "${ARGS[@]}")
echo "$OFF"
echo "$ON"
python3 - "$OFF" "$ON" <<'PY'
import sys
def parse(line):
    return dict(kv.split("=") for kv in line.split()[1:])
off, on = parse(sys.argv[1]), parse(sys.argv[2])
delta = float(on["cpu_ms_per_s"]) - float(off["cpu_ms_per_s"])
print(f"bench-serving: scraping costs {delta:+.2f} ms of CPU per second = {delta / 10:.3f} % of one core "
      f"(target ≤ 1 %); RSS {int(on['rss_kib']) - int(off['rss_kib']):+d} KiB; {on['targets_up']} targets up")
PY
