#!/usr/bin/env bash
# Benchmark of the multiplexer: an IPv4 client c4 reaches an IPv6-only
# backend in s6 through gw, in one run, on network namespaces it creates:
#   1. sixgated mux in gw, routing on the TLS server_name (and by port alone
#      for the long transfer);
#   2. HAProxy from Debian in gw, TCP mode, routing on req.ssl_sni (and a
#      plain TCP frontend), with the same number of threads;
#   3. for the long transfer, direct: c4 to the backend over IPv6, forwarded
#      by gw over the same links;
#   4. for the long transfer, the same tcp entry on an address mapped alone
#      ([[nat64.eam]]): translated (tc-BPF) and DNATed in the kernel, with
#      no proxy.
# New connections per second (a ClientHello, a 100-byte reply, close; muxload)
# and one long iperf3 transfer. Not part of `make test`. Needs root,
# haproxy and iperf3 (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "needs root: it creates network namespaces" >&2; exit 1; }
# apply pins the translator's tc-BPF maps in a bpffs of its own: the whole
# run shares one private mount namespace, so the daemon finds them and
# nothing is left in the machine's /sys/fs/bpf.
[ -n "${SIXGATE_BENCH_UNSHARED:-}" ] || exec env SIXGATE_BENCH_UNSHARED=1 unshare --mount --propagation private bash "$0" "$@"
for p in haproxy iperf3; do command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $p >/dev/null; done
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
THREADS=${THREADS:-2}
CLIENTS=${CLIENTS:-8}
ROUNDS=${ROUNDS:-4}
TRANSFER_ROUNDS=${TRANSFER_ROUNDS:-3}
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
    umount "$work/bpf" 2>/dev/null || true
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
address4 = "192.0.2.1"
[[nat64.eam]]
ipv4 = "203.0.113.21"
ipv6 = "2001:db8:ff::21"
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
[[mux]]
listen = "203.0.113.21:5201"
kind = "tcp"
default = "[2001:db8:2::2]:5201"
CONF
"$BIN/sixgatectl" apply "$work/sixgate.toml" --netns $id-gw >/dev/null
ip netns exec $id-gw "$BIN/sixgated" run --config "$work/sixgate.toml" 2>"$work/sixgated.log" & pids+=($!)

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
for _ in $(seq 100); do grep -q "sixgated: ready" "$work/sixgated.log" && break; sleep 0.2; done
grep -q "sixgated: ready" "$work/sixgated.log" || { cat "$work/sixgated.log"; exit 1; }
sleep 1

rate() { x c4 "$BIN/muxload" connect 198.51.100.20 "$1" "$SECONDS_PER_RUN" "$CLIENTS" Tests/MuxTests/openssl-hello.hex; }
tcp() { timeout $((SECONDS_PER_RUN + 20)) ip netns exec $id-$1 iperf3 -c "$2" -p "$3" -t "$SECONDS_PER_RUN" -J 2>/dev/null \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.3f" % (r["end"]["sum_received"]["bits_per_second"]/1e9) if "sum_received" in r["end"] else "0 (%s)" % r.get("error"))'; }

# Rounds in alternating order, so that neither side always runs on a
# machine the other has just warmed or left with sockets in TIME_WAIT.
ours=0; theirs=0; ours_failed=0; theirs_failed=0
for round in $(seq "$ROUNDS"); do
    order="443 8443"; [ $((round % 2)) -eq 0 ] && order="8443 443"
    for port in $order; do
        read n failed < <(rate $port)
        if [ $port = 443 ]; then ours=$((ours + n)); ours_failed=$((ours_failed + failed)); else theirs=$((theirs + n)); theirs_failed=$((theirs_failed + failed)); fi
        sleep 1
    done
done
ours=$((ours / ROUNDS)); theirs=$((theirs / ROUNDS))
echo "connections/s over $ROUNDS rounds  sixgate $ours (failed $ours_failed)  haproxy $theirs (failed $theirs_failed)"
# The transfers too, in rounds whose order rotates: one stream at a time
# varies with what the machine did just before more than the paths differ.
declare -A bw=([relayed]=0 [haproxy]=0 [direct]=0 [kernel]=0)
declare -A target=([relayed]="198.51.100.20 5201" [haproxy]="198.51.100.20 15201" [direct]="2001:db8:2::2 5201" [kernel]="203.0.113.21 5201")
paths=(relayed kernel haproxy direct)
for round in $(seq "$TRANSFER_ROUNDS"); do
    for k in 0 1 2 3; do
        path=${paths[$(( (k + round - 1) % 4 ))]}
        got=$(tcp c4 ${target[$path]})
        case $got in 0*) echo "the $path transfer failed: $got"; "$BIN/sixgatectl" status "$work/sixgate.toml" | grep -i "mux"; exit 1 ;; esac
        bw[$path]=$(python3 -c "print(${bw[$path]} + $got / $TRANSFER_ROUNDS)")
    done
done
ours_bw=$(printf %.3f "${bw[relayed]}"); theirs_bw=$(printf %.3f "${bw[haproxy]}"); direct_bw=$(printf %.3f "${bw[direct]}"); kernel_bw=$(printf %.3f "${bw[kernel]}")
echo "translator: $(grep -m1 'translator ready' "$work/sixgated.log" | sed 's/.*translator ready: //')"
echo "long transfer Gbit/s over $TRANSFER_ROUNDS rounds  sixgate relayed $ours_bw  in the kernel $kernel_bw  haproxy $theirs_bw  direct $direct_bw"
python3 - "$ours" "$theirs" "$ours_bw" "$theirs_bw" "$direct_bw" "$kernel_bw" <<'PY'
import sys
ours, theirs, obw, tbw, dbw, kbw = map(float, sys.argv[1:])
for name, measured, goal in [("mux_connections_vs_haproxy", ours / theirs, 1.0), ("mux_transfer_vs_haproxy", obw / tbw, 1.0),
                             ("mux_transfer_vs_direct", obw / dbw, 0.8), ("mux_kernel_transfer_vs_haproxy", kbw / tbw, 1.0),
                             ("mux_kernel_transfer_vs_direct", kbw / dbw, 0.8)]:
    print("target %s %.2f %s %s" % (name, measured, goal, "PASS" if measured >= goal else "FAIL"))
PY
