#!/usr/bin/env bash
# Fuzzes Tally's untrusted inputs for a bounded time each: the collector's
# OTLP decode path (fuzz/fuzz_targets/otlp_decode.rs) and the agent's
# exposition parser (fuzz/fuzz_targets/exposition_parse.rs). Fails if
# libFuzzer finds a crash, a panic, an overflow, a timeout or an
# out-of-memory input (with AddressSanitizer also memory errors and leaks).
#
#   FUZZ_SECONDS    how long to fuzz each target (default 60), after the build
#   FUZZ_SANITIZER  none (default) or address
#   FUZZ_TARGET     one target (default: all of them, one after the other)
#
# No sanitizer by default: the workspace forbids unsafe code, so what the
# target can find is panics and overflows, which debug assertions and
# overflow checks catch; AddressSanitizer made the cold build 537 s instead
# of 347 s (one job on the 2-core machine) and fuzzing 5x slower (2.7k
# instead of 14k inputs/s).
# A sanitizer needs nightly-only -Z flags (-Zsanitizer=address); only the
# stable toolchain of rust-toolchain.toml is available here, so that build
# runs with RUSTC_BOOTSTRAP=1, which lets stable rustc accept them.
# Installs cargo-fuzz and a C++ compiler (libFuzzer is C++) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
if [ -n "${FUZZ_TARGET:-}" ]; then
  targets=("$FUZZ_TARGET")
else
  targets=(otlp_decode exposition_parse log_lines)
fi

if ! command -v c++ >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "fuzz: no C++ compiler (c++); install g++ or clang" >&2
    exit 1
  fi
  echo "fuzz: installing g++ (libfuzzer-sys builds libFuzzer from C++)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

if [ "$sanitizer" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi
# Optimized, with debug assertions and overflow checks (cargo-fuzz's
# defaults without -O); 16 codegen units instead of its 1 build faster.
build=(--sanitizer "$sanitizer" --codegen-units 16)
# One build for every target: they share their dependencies.
if [ ${#targets[@]} -eq 1 ]; then
  cargo fuzz build "${build[@]}" "${targets[0]}"
else
  cargo fuzz build "${build[@]}"
fi

# Fuzzes $1; prints each finding and returns non-zero on one.
fuzz_one() {
  local target="$1"
  # New inputs go to corpus/ (ignored by git); seeds/ is the committed
  # seed corpus and is only read.
  local corpus="fuzz/corpus/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  local log="fuzz/artifacts/$target.log"
  echo "fuzz: $target for ${seconds}s (sanitizer: $sanitizer; libFuzzer log: $log)"
  local status=0
  cargo fuzz run "${build[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=30 -print_final_stats=1 >"$log" 2>&1 || status=$?

  # libFuzzer's progress lines are thousands; keep its summary.
  grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+(INITED|DONE)|Done [0-9]+ runs|stat::number_of_executed_units)' "$log" || true
  if [ "$status" != 0 ]; then
    echo "fuzz: $target FAILED (exit $status); the end of $log:" >&2
    tail -n 80 "$log" >&2
    # CI's clone is thrown away: print each finding so it can be reproduced
    # from the log (base64 -d > crash; see tests/README.md).
    { grep -o 'Test unit written to .*' "$log" || true; } | sed 's/^Test unit written to //' |
      while read -r finding; do
        [ -f "$finding" ] || continue
        echo "fuzz: finding $finding ($(wc -c <"$finding") bytes), base64:" >&2
        base64 -w0 "$finding" | head -c 65536 >&2
        echo >&2
      done
    return 1
  fi
  echo "fuzz: $target ran ${seconds}s without a finding"
}

# Every target runs even after one fails, so one CI log shows them all.
failed=()
for target in "${targets[@]}"; do
  fuzz_one "$target" || failed+=("$target")
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
