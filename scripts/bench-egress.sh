#!/usr/bin/env bash
# The egress benchmark (issue #8): one read-and-classify pass over
# 100,000 tracked connections, synthetic and from the real kernel.
# Builds a throw-away network namespace pair, switches connection tracking
# and accounting on in it (an nftables rule, as kube-proxy's are), opens
# 100,000 UDP flows from a "pod" namespace, then runs
# `cargo bench -p tally-agent --bench egress -- --netns PATH`.
# Needs root, iproute2, nftables and python3 (scripts/install-test-peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-egress: needs root (network namespaces)" >&2; exit 1; }
FLOWS="${FLOWS:-100000}"
P="tlybench$$"
cleanup() { for n in node pod world; do ip netns del "$P$n" 2>/dev/null || true; done; }
trap cleanup EXIT
for n in node pod world; do ip netns add "$P$n"; ip -n "$P$n" link set lo up; done
ip link add up0 netns "${P}node" type veth peer name eth0 netns "${P}world"
ip link add eth0 netns "${P}pod" type veth peer name vpod netns "${P}node"
ip -n "${P}node" addr add 10.0.1.10/24 dev up0 && ip -n "${P}node" link set up0 up
ip -n "${P}world" addr add 10.0.1.1/24 dev eth0 && ip -n "${P}world" link set eth0 up
ip -n "${P}world" addr add 10.0.2.20/32 dev lo
ip -n "${P}world" addr add 93.184.34.7/32 dev lo
ip -n "${P}world" route add 10.244.1.0/24 via 10.0.1.10
ip -n "${P}node" route add default via 10.0.1.1
ip -n "${P}pod" addr add 10.244.1.10/32 dev eth0 && ip -n "${P}pod" link set eth0 up
ip -n "${P}pod" route add 169.254.1.1 dev eth0 && ip -n "${P}pod" route add default via 169.254.1.1 dev eth0
ip -n "${P}node" link set vpod up && ip -n "${P}node" route add 10.244.1.10/32 dev vpod
ip netns exec "${P}node" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.vpod.proxy_arp=1 \
  net.netfilter.nf_conntrack_acct=1 net.netfilter.nf_conntrack_udp_timeout=600
printf 'table inet tally_bench {\n chain forward { type filter hook forward priority 0; ct state established,related accept; }\n}\n' \
  | ip netns exec "${P}node" nft -f -
ip netns exec "${P}pod" python3 - "$FLOWS" <<'PY'
import socket, sys
flows = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
targets = ["10.0.2.20", "93.184.34.7"]
for i in range(flows):
    s.sendto(b"x" * 64, (targets[i % 2], 1024 + i // 2))
PY
echo "conntrack entries in the bench namespace: $(ip netns exec "${P}node" cat /proc/sys/net/netfilter/nf_conntrack_count)"
cargo bench -q -p tally-agent --bench egress -- --netns "/run/netns/${P}node"
# The peer: conntrack-tools reading the same table the same way (a
# ctnetlink dump), its own output discarded.
if command -v conntrack >/dev/null; then
  for run in 1 2; do
    /usr/bin/time -f "conntrack -L (conntrack-tools) run $run: %U s user, %S s kernel, %M KiB max RSS" \
      ip netns exec "${P}node" conntrack -L -o extended >/dev/null 2>/tmp/bench-egress-peer.$$ || true
    grep -v "flow entries" /tmp/bench-egress-peer.$$ || true
  done
  rm -f /tmp/bench-egress-peer.$$
else
  echo "peer skipped: apt-get install conntrack for conntrack-tools"
fi
