#!/usr/bin/env bash
# Benchmark of the DNS64 server: dnsperf against Unbound with its dns64 module
# and against sixgated dns64, same authoritative upstream (NSD), same query
# lists, same thread count. Two workloads: all cache hits, and half misses.
# Not part of `make test`. Needs root, nsd, unbound and dnsperf (installed if
# missing). Everything runs inside one network namespace it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "needs root: it creates a network namespace" >&2; exit 1; }
for p in nsd unbound dnsperf; do command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $p >/dev/null; done
RUN=${RUN:-5}
REPEAT=${REPEAT:-3}
THREADS=${THREADS:-2}
swift build -c release --product sixgated >/dev/null
BIN=$(swift build -c release --show-bin-path)

ns=sgdnsbench$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add $ns
x() { ip netns exec $ns "$@"; }
x ip link set lo up
for a in 2001:db8:1::1 2001:db8:1::2 2001:db8:2::2; do x ip addr add $a/128 dev lo nodad; done

cat > "$work/example.org.zone" <<'ZONE'
$TTL 3600
@        IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 300
         IN NS  ns.example.org.
ns       IN AAAA 2001:db8:2::2
v4only   IN A    192.0.2.10
dual     IN A    192.0.2.11
dual     IN AAAA 2001:db8:2::11
multi    IN A    192.0.2.21
multi    IN A    192.0.2.22
*        IN A    192.0.2.50
ZONE
cat > "$work/nsd.conf" <<CONF
server:
    ip-address: 2001:db8:2::2
    zonesdir: "$work"
    pidfile: "$work/nsd.pid"
    xfrdfile: "$work/xfrd.state"
    zonelistfile: "$work/zone.list"
    database: ""
    rrl-ratelimit: 0
    username: ""
    chroot: ""
remote-control:
    control-enable: no
zone:
    name: example.org
    zonefile: example.org.zone
CONF
cat > "$work/unbound.conf" <<CONF
server:
    interface: 2001:db8:1::2
    access-control: ::/0 allow
    module-config: "dns64 iterator"
    dns64-prefix: 2001:db8:64::/96
    do-not-query-localhost: no
    num-threads: $THREADS
    username: ""
    chroot: ""
    directory: "$work"
    pidfile: "$work/unbound.pid"
    use-syslog: no
    logfile: ""
    msg-cache-size: 64m
    rrset-cache-size: 64m
stub-zone:
    name: "example.org."
    stub-addr: 2001:db8:2::2
remote-control:
    control-enable: no
CONF
cat > "$work/sixgate.toml" <<CONF
prefix = "2001:db8:64::/96"
[gateway]
uplink4 = "lo"
inside6 = "lo"
clients = ["2001:db8:1::/64"]
[nat64]
enabled = false
[dns64]
listen = ["[2001:db8:1::1]:53"]
upstreams = ["[2001:db8:2::2]:53"]
allow = ["::/0"]
threads = $THREADS
CONF

ip netns exec $ns nsd -d -c "$work/nsd.conf" >/dev/null 2>&1 & pids+=($!)
ip netns exec $ns unbound -d -c "$work/unbound.conf" >/dev/null 2>&1 & pids+=($!)
ip netns exec $ns "$BIN/sixgated" dns64 --config "$work/sixgate.toml" 2>"$work/sixgated.log" & pids+=($!)
sleep 2

# Cache-hit list: a few names over and over. Half-miss lists: every other line
# a name never asked before (the zone's wildcard answers it), new names for
# every run of every server.
for i in $(seq 1 2000); do printf 'v4only.example.org AAAA\ndual.example.org AAAA\nmulti.example.org AAAA\n'; done > "$work/hit.txt"
misses() { awk -v p="$1" 'BEGIN { for (i = 1; i <= 400000; i++) printf "v4only.example.org AAAA\n%s%d.example.org AAAA\n", p, i }' > "$work/miss.txt"; }

# The rate: a plain run at full speed. The latency: a run with -v (a line per
# query) at the same offered load for both servers, half of Unbound's rate in
# that round. At full speed a closed loop measures its own queueing, and
# dnsperf spends more on printing the lines than on the queries. A miss
# workload gets fresh names for every run.
rate() {  # server, workload (hit|miss), tag -> qps
    if [ "$2" = miss ]; then misses "$3"; fi
    x dnsperf -s "$1" -d "$work/$2.txt" -l "$RUN" -c 20 -T "$THREADS" 2>/dev/null | awk '/Queries per second/ { printf "%.0f", $4 }'
}
latency() {  # server, workload, tag, queries per second -> "mean_ms p99_ms"
    if [ "$2" = miss ]; then misses "$3"; fi
    x dnsperf -s "$1" -d "$work/$2.txt" -l "$RUN" -c 20 -T "$THREADS" -Q "$4" -v > "$work/latency" 2>/dev/null || true
    python3 -c '
import sys
lat = []
for line in open(sys.argv[1]):
    if line.startswith("> "):
        try:
            lat.append(float(line.split()[-1]))
        except ValueError:
            lat.append(5.0)  # a timed-out query counts as dnsperf waited for it: a server that drops does not look faster
lat.sort()
if not lat:
    print("99999 99999")  # no measurement is a failed one, never a pass
else:
    print("%.3f %.3f" % (1000 * sum(lat) / len(lat), 1000 * lat[max(0, int(len(lat) * 0.99) - 1)]))' "$work/latency"
}
# Warm both caches.
x dnsperf -s 2001:db8:1::1 -d "$work/hit.txt" -l 1 >/dev/null 2>&1 || true
x dnsperf -s 2001:db8:1::2 -d "$work/hit.txt" -l 1 >/dev/null 2>&1 || true

# Each measurement REPEAT times, the servers taking turns, and the median of
# each column: one run on a shared machine can be off by a third.
for r in $(seq 1 "$REPEAT"); do
    for w in hit miss; do
        u=$(rate 2001:db8:1::2 $w "u$r-"); s=$(rate 2001:db8:1::1 $w "s$r-")
        load=$(( ${u:-0} / 2 > 1000 ? ${u:-0} / 2 : 1000 ))
        echo "${u:-0} $(latency 2001:db8:1::2 $w "ul$r-" $load)" >> "$work/unbound.$w"
        echo "${s:-0} $(latency 2001:db8:1::1 $w "sl$r-" $load)" >> "$work/sixgate.$w"
    done
done
for f in unbound.hit sixgate.hit unbound.miss sixgate.miss; do echo "runs $f (qps mean p99): $(paste -sd '/' "$work/$f")"; done
median() { python3 -c 'import sys, statistics as s
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
print(" ".join(("%.0f" if i == 0 else "%.3f") % s.median(c) for i, c in enumerate(zip(*rows))))' "$work/$1"; }
read -r u_hit_qps u_hit_mean u_hit_p99 <<<"$(median unbound.hit)"
read -r s_hit_qps s_hit_mean s_hit_p99 <<<"$(median sixgate.hit)"
read -r u_miss_qps u_miss_mean u_miss_p99 <<<"$(median unbound.miss)"
read -r s_miss_qps s_miss_mean s_miss_p99 <<<"$(median sixgate.miss)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "(medians of $REPEAT runs of $RUN s each, $THREADS threads for the servers and for dnsperf;"
echo " latency at half of Unbound's rate, the same load for both)"
printf '%-26s %10s %10s %10s\n' "server / workload" qps "mean ms" "p99 ms"
printf '%-26s %10s %10s %10s\n' "unbound dns64, hits" "$u_hit_qps" "$u_hit_mean" "$u_hit_p99"
printf '%-26s %10s %10s %10s\n' "sixgate dns64, hits" "$s_hit_qps" "$s_hit_mean" "$s_hit_p99"
printf '%-26s %10s %10s %10s\n' "unbound dns64, 50% miss" "$u_miss_qps" "$u_miss_mean" "$u_miss_p99"
printf '%-26s %10s %10s %10s\n' "sixgate dns64, 50% miss" "$s_miss_qps" "$s_miss_mean" "$s_miss_p99"
hit=$(ratio "$s_hit_qps" "$u_hit_qps"); miss=$(ratio "$s_miss_qps" "$u_miss_qps")
echo "sixgate / unbound qps: hits ${hit}x, 50% miss ${miss}x (threads: $THREADS)"
ge() { awk -v m="$1" -v g="$2" 'BEGIN { exit !(m >= g) }' && echo PASS || echo FAIL; }
le() { awk -v m="$1" -v g="$2" 'BEGIN { exit !(m <= g) }' && echo PASS || echo FAIL; }
echo "target qps_hits_vs_unbound ${hit} 1.2 $(ge "$hit" 1.2)"
echo "target qps_miss_vs_unbound ${miss} 1.2 $(ge "$miss" 1.2)"
echo "target p99_hits_ms ${s_hit_p99} ${u_hit_p99} $(le "$s_hit_p99" "$u_hit_p99")"
echo "target p99_miss_ms ${s_miss_p99} ${u_miss_p99} $(le "$s_miss_p99" "$u_miss_p99")"
