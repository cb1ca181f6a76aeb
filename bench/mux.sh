#!/usr/bin/env bash
# Benchmark of the multiplexer: an IPv4 client c4 reaches an IPv6-only
# backend in s6 through gw, in one run, on network namespaces it creates:
#   1. sixgated mux in gw, routing on the TLS server_name (and by port alone
#      for the long transfer);
#   2. HAProxy from Debian in gw, TCP mode, routing on req.ssl_sni (and a
#      plain TCP frontend), with the same number of threads;
#   3. for the long transfer, direct: c4 to the backend over IPv6, forwarded
#      by gw over the same links.
# New connections per second (a ClientHello, a 100-byte reply, close; muxload)
# and one long iperf3 transfer. Not part of `make test`. Needs root,
# haproxy and iperf3 (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "needs root: it creates network namespaces" >&2; exit 1; }
for p in haproxy iperf3; do command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $p >/dev/null; done
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
THREADS=${THREADS:-2}
CLIENTS=${CLIENTS:-8}
for p in sixgatectl sixgated muxload; do swift build -c release --product $p >/dev/null; done
BIN=$(swift build -c release --show-bin-path)

id=sgmx$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for h in c4 gw s6; do ip netns del $id-$h 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
x() { local h=$1; shift; ip netns exec $id-$h "$@"; }

for h in c4 gw s6; do
    ip netns add $id-$h
    x $h sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    x $h ip link set lo up
done
ip -n $id-gw link add c4 type veth peer name eth0 netns $id-c4
ip -n $id-gw link add s6 type veth peer name eth0 netns $id-s6
ip -n $id-gw addr add 198.51.100.1/24 dev c4
ip -n $id-gw addr add 2001:db8:2::1/64 dev s6 nodad
# For the direct transfer only: c4 also has IPv6, forwarded by gw to s6 over
# the same links the multiplexer's connections take.
ip -n $id-gw addr add 2001:db8:1::1/64 dev c4 nodad
ip -n $id-c4 addr add 2001:db8:1::2/64 dev eth0 nodad
x gw sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n $id-c4 addr add 198.51.100.2/24 dev eth0
ip -n $id-s6 addr add 2001:db8:2::2/64 dev eth0 nodad
for l in "gw c4" "gw s6" "c4 eth0" "s6 eth0"; do set -- $l; ip -n $id-$1 link set $2 up; done
ip -n $id-c4 route add default via 198.51.100.1
ip -n $id-s6 -6 route add default via 2001:db8:2::1
ip -n $id-c4 -6 route add default via 2001:db8:1::1
# The client's side of many short connections: ports enough for the run.
x c4 sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
x gw sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv6.ip_nonlocal_bind=1 net.ipv4.tcp_tw_reuse=1

ip netns exec $id-s6 "$BIN/muxload" serve 2001:db8:2::2 9000 "$THREADS" 100 2>/dev/null & pids+=($!)
ip netns exec $id-s6 iperf3 -s -B 2001:db8:2::2 >/dev/null 2>&1 & pids+=($!)

cat > "$work/sixgate.toml" <<CONF
prefix = "2001:db8:64::/96"
[gateway]
uplink4 = "c4"
inside6 = "s6"
clients = ["2001:db8:2::/64"]
[nat64]
enabled = false
[dns64]
enabled = false
[controller]
state_dir = "$work/state"
bpf_dir = "$work/bpf"
control_socket = "$work/control.sock"
[multiplexer]
threads = $THREADS
max_connections = 9000
[[mux]]
listen = "198.51.100.20:443"
kind = "tls-sni"
[[mux.route]]
name = "www.example.com"
backend = "[2001:db8:2::2]:9000"
[[mux]]
listen = "198.51.100.20:5201"
kind = "tcp"
default = "[2001:db8:2::2]:5201"
CONF
unshare --mount --propagation private "$BIN/sixgatectl" apply "$work/sixgate.toml" --netns $id-gw >/dev/null
ip netns exec $id-gw "$BIN/sixgated" mux --config "$work/sixgate.toml" 2>"$work/mux.log" & pids+=($!)

cat > "$work/haproxy.cfg" <<CONF
global
    nbthread $THREADS
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend tls
    bind 198.51.100.20:8443
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    use_backend sites if { req_ssl_sni -i www.example.com }
backend sites
    server s1 [2001:db8:2::2]:9000
frontend long
    bind 198.51.100.20:15201
    default_backend iperf
backend iperf
    server s1 [2001:db8:2::2]:5201
CONF
ip netns exec $id-gw haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!)
sleep 2

rate() { x c4 "$BIN/muxload" connect 198.51.100.20 "$1" "$SECONDS_PER_RUN" "$CLIENTS" Tests/MuxTests/openssl-hello.hex; }
tcp() { timeout $((SECONDS_PER_RUN + 20)) ip netns exec $id-$1 iperf3 -c "$2" -p "$3" -t "$SECONDS_PER_RUN" -J 2>/dev/null \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.3f" % (r["end"]["sum_received"]["bits_per_second"]/1e9) if "sum_received" in r["end"] else "0 (%s)" % r.get("error"))'; }

read ours ours_failed < <(rate 443)
sleep 1
read theirs theirs_failed < <(rate 8443)
echo "connections/s  sixgate $ours (failed $ours_failed)  haproxy $theirs (failed $theirs_failed)"
ours_bw=$(tcp c4 198.51.100.20 5201)
theirs_bw=$(tcp c4 198.51.100.20 15201)
direct_bw=$(tcp c4 2001:db8:2::2 5201)
echo "long transfer Gbit/s  sixgate $ours_bw  haproxy $theirs_bw  direct $direct_bw"
python3 - "$ours" "$theirs" "$ours_bw" "$theirs_bw" "$direct_bw" <<'PY'
import sys
ours, theirs, obw, tbw, dbw = map(float, sys.argv[1:])
for name, measured, goal in [("mux_connections_vs_haproxy", ours / theirs, 1.0), ("mux_transfer_vs_haproxy", obw / tbw, 1.0),
                             ("mux_transfer_vs_direct", obw / dbw, 0.8)]:
    print("target %s %.2f %s %s" % (name, measured, goal, "PASS" if measured >= goal else "FAIL"))
PY
