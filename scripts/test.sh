#!/usr/bin/env bash
# The whole test suite: unit, integration and end-to-end tests of every
# crate, against real cgroups, processes, HTTP on loopback, Prometheus and
# promtool. Installs the peers first when run as root.
#
# Tests that need root (real cgroups) print a SKIP line without it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  bash scripts/install-test-peers.sh
else
  bash scripts/install-test-peers.sh || echo "continuing: suites whose peers are missing print SKIP lines"
fi

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; run them first so the suite's summary
  # is the last thing printed.
  cargo test --workspace --doc --quiet
  cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}" "$@"
else
  cargo test --workspace "$@"
fi
