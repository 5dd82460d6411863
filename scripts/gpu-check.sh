#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU: builds the release `tally`
# and runs `tally gpu-check`: a frame of NVML readings every second under a
# small GPU load, a supported / not supported report per field, GPU and
# MIG instance, the per-process attribution of the load's PID, and a
# replay fixture agent/tests/fixtures/gpu/nvml-<model>-<driver>.json to
# commit. 5 minutes in all, build included; without a GPU it says so and
# exits 0.
#
#   bash scripts/gpu-check.sh
#   GPU_CHECK_SECONDS=30 GPU_CHECK_OUT=/tmp/gpu.json bash scripts/gpu-check.sh
#   TALLY_BIN=path/to/tally bash scripts/gpu-check.sh    # no build
#
# The build is the release profile without fat LTO, in target/gpu-check:
# the same code in a fraction of the build time (the check measures NVML,
# not the binary's speed), and the fat-LTO target/release is left alone.
# Building needs the crates (crates.io or ~/.cargo); on a machine with
# neither, build elsewhere and pass TALLY_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=300
# Kept for gpu-check besides its readings: up to 60 s for the load to
# start, and a margin for the report and the fixture.
RESERVE=75
WANT=${GPU_CHECK_SECONDS:-60}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

if [ -n "${TALLY_BIN:-}" ]; then
  TALLY=$TALLY_BIN
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/gpu-check}
  build_budget=$(( BUDGET - RESERVE - 10 ))
  echo "gpu-check: building the release binary (at most ${build_budget} s)"
  if ! CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    timeout "$build_budget" cargo build --release --quiet --bin tally; then
    echo "gpu-check: the build failed or ran past ${build_budget} s; run again (a warm build is quick) or set TALLY_BIN" >&2
    exit 1
  fi
  TALLY=$CARGO_TARGET_DIR/release/tally
  echo "gpu-check: built in $(elapsed) s"
fi

left=$(( BUDGET - $(elapsed) - RESERVE ))
seconds=$(( WANT < left ? WANT : left ))
if [ "$seconds" -lt 5 ]; then
  echo "gpu-check: no time left for readings ($(elapsed) s spent)" >&2
  exit 1
fi
args=(gpu-check --seconds "$seconds")
if [ -n "${GPU_CHECK_OUT:-}" ]; then
  args+=(--out "$GPU_CHECK_OUT")
fi
echo "gpu-check: $TALLY ${args[*]}"
timeout $(( BUDGET - $(elapsed) )) "$TALLY" "${args[@]}"
echo "gpu-check: done in $(elapsed) s"
