#!/usr/bin/env bash
# Exposition parser throughput (issue #6): the agent's parser and the
# reference Python parser (prometheus_client, from .venv-peers) on the same
# generated 10 MiB vLLM-style page, each pinned to one core, in one command.
#
#   PY_RUNS   Python parses to take the median of (default 3; one takes
#             seconds)
#
# The Rust side is `cargo bench -p tally-agent --bench exposition`
# (agent/benches/exposition.rs), which writes its page to BENCH_PAGE_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

python=.venv-peers/bin/python
if ! "$python" -c 'import prometheus_client.parser' 2>/dev/null; then
  echo "bench-exposition: no prometheus_client in .venv-peers; run scripts/install-test-peers.sh" >&2
  exit 1
fi
runs="${PY_RUNS:-3}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
page="$dir/page.txt"

# One core each; the build runs unpinned first.
pin=()
if command -v taskset >/dev/null; then
  pin=(taskset -c 0)
fi
cargo bench -p tally-agent --bench exposition --no-run
BENCH_PAGE_OUT="$page" "${pin[@]}" cargo bench -p tally-agent --bench exposition --quiet | tee "$dir/rust.txt"

"${pin[@]}" "$python" - "$page" "$runs" <<'EOF' | tee "$dir/python.txt"
import statistics
import sys
import time

from importlib.metadata import version
from prometheus_client.parser import text_string_to_metric_families

path, runs = sys.argv[1], int(sys.argv[2])
with open(path, "rb") as page:
    data = page.read()
text = data.decode("utf-8")
times = []
for _ in range(runs):
    began = time.perf_counter()
    samples = sum(len(family.samples) for family in text_string_to_metric_families(text))
    times.append(time.perf_counter() - began)
median = statistics.median(times)
mib = len(data) / (1 << 20)
print(
    f"prometheus_client {version('prometheus-client')}: {samples} samples; "
    f"parse median {median * 1e3:.0f} ms ({mib / median:.2f} MiB/s) over {runs} runs"
)
EOF

rust_mibs="$(sed -n 's/.*parse median [0-9.]* ms (\([0-9.]*\) MiB\/s.*/\1/p' "$dir/rust.txt")"
python_mibs="$(sed -n 's/.*parse median [0-9.]* ms (\([0-9.]*\) MiB\/s.*/\1/p' "$dir/python.txt")"
rust_samples="$(sed -n 's/.* \([0-9]*\) samples (.*/\1/p' "$dir/rust.txt")"
python_samples="$(sed -n 's/.*: \([0-9]*\) samples;.*/\1/p' "$dir/python.txt")"
if [ "$rust_samples" != "$python_samples" ]; then
  echo "bench-exposition: the parsers disagree on the page: $rust_samples samples against $python_samples" >&2
  exit 1
fi
echo "exposition: $(nproc) cores here; Tally ${rust_mibs} MiB/s, prometheus_client ${python_mibs} MiB/s:" \
  "$(echo "scale=0; $rust_mibs / $python_mibs" | bc)x"
