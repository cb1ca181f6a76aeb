#!/usr/bin/env bash
# Benchmark of 6bed4: iperf3 TCP from a peer p1 to the IPv6-only server s6,
#   1. over plain IPv6 forwarding through gw (the ceiling),
#   2. through our 6bed4peer and our router in gw (sixgated 6bed4),
# in one run, on network namespaces it creates and removes.
# Not part of `make test`. Needs root and iperf3 (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "needs root: it creates network namespaces" >&2; exit 1; }
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
for p in sixgatectl sixgated 6bed4peer; do swift build -c release --product $p >/dev/null; done
BIN=$(swift build -c release --show-bin-path)

id=sg6b$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for h in p1 gw s6; do ip netns del $id-$h 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
x() { local h=$1; shift; ip netns exec $id-$h "$@"; }

for h in p1 gw s6; do
    ip netns add $id-$h
    x $h sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    x $h ip link set lo up
done
x gw sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n $id-gw link add p1 type veth peer name eth0 netns $id-p1
ip -n $id-gw link add s6 type veth peer name eth0 netns $id-s6
ip -n $id-gw addr add 192.0.2.1/24 dev p1
ip -n $id-gw addr add 2001:db8:1::1/64 dev p1 nodad
ip -n $id-gw addr add 2001:db8:2::1/64 dev s6 nodad
ip -n $id-p1 addr add 192.0.2.11/24 dev eth0
ip -n $id-p1 addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n $id-s6 addr add 2001:db8:2::2/64 dev eth0 nodad
for l in "gw p1" "gw s6" "p1 eth0" "s6 eth0"; do set -- $l; ip -n $id-$1 link set $2 up; done
ip -n $id-p1 route add default via 192.0.2.1
ip -n $id-p1 -6 route add default via 2001:db8:1::1
ip -n $id-s6 -6 route add default via 2001:db8:2::1

ip netns exec $id-s6 iperf3 -s -B 2001:db8:2::2 >/dev/null 2>&1 & pids+=($!)
sleep 0.5
tcp() { timeout $((SECONDS_PER_RUN + 20)) ip netns exec $id-p1 iperf3 -6 -c 2001:db8:2::2 -t "$SECONDS_PER_RUN" -J 2>/dev/null | python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }

echo "== plain IPv6 forwarding p1 -> s6"
plain=$(tcp)

echo "== 6bed4: 6bed4peer in p1, sixgated 6bed4 in gw"
cat > "$work/sixgate.toml" <<CONF
prefix = "2001:db8:64::/96"
[gateway]
uplink4 = "p1"
inside6 = "s6"
clients = ["2001:db8:2::/64"]
[nat64]
enabled = false
[dns64]
enabled = false
[sixbedfour]
enabled = true
address4 = "192.0.2.1"
prefix = "2001:db8:6bed:4::/64"
[controller]
state_dir = "$work/state"
CONF
"$BIN/sixgatectl" apply "$work/sixgate.toml" --netns $id-gw >/dev/null
ip netns exec $id-gw "$BIN/sixgated" 6bed4 --config "$work/sixgate.toml" 2>"$work/router.log" & pids+=($!)
sleep 0.5
# Native IPv6 goes; everything takes the 6bed4 default route.
ip -n $id-p1 -6 route del default via 2001:db8:1::1
ip -n $id-p1 -6 addr del 2001:db8:1::2/64 dev eth0
ip netns exec $id-p1 "$BIN/6bed4peer" --server 192.0.2.1 --default-route 2>"$work/peer.log" & pids+=($!)
for i in $(seq 50); do grep -q "address " "$work/peer.log" && break; sleep 0.1; done
grep "address " "$work/peer.log" | tail -1
ours=$(tcp)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
printf '%-34s %12s\n' path "TCP Gbit/s"
printf '%-34s %12s\n' "plain IPv6 forwarding" "$plain"
printf '%-34s %12s\n' "6bed4 (our peer and router)" "$ours"
echo "6bed4 / plain: $(ratio "$ours" "$plain")x (the reference moves about 0.18 Gbit/s here)"
verdict() { awk -v m="$1" -v g="$2" 'BEGIN { exit !(m >= g) }' && echo PASS || echo FAIL; }
echo "target tcp_6bed4_gbps ${ours} 0.9 $(verdict "$ours" 0.9)"
