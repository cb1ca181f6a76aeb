#!/usr/bin/env bash
# Benchmark of the translator: iperf3 TCP throughput c6 -> s4 and the rate of
# small UDP packets (64-byte payload), through
#   1. plain IPv6 forwarding c6 -> s6 (the ceiling),
#   2. Tayga from Debian (dynamic pool + nft masquerade),
#   3. sixgate's TUN translator (same pool, same masquerade, rules by sixgatectl),
#   4. sixgate's kernel datapath (its tc-BPF program, the TUN translator as its slow path),
# in one run, on one topology of network namespaces it creates and removes,
# with the CPU time sixgated spends during the TCP runs.
# Not part of `make test`. Needs root, tayga and iperf3 (installed if missing).
# A full run takes about 20 minutes; PATHS="plain kernel" (say) measures only
# those paths, and the lines of the others show 0.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "needs root: it creates network namespaces" >&2; exit 1; }
for p in tayga iperf3; do command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $p >/dev/null; done
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
PATHS=${PATHS:-plain tayga tun kernel}
want() { [[ " $PATHS " == *" $1 "* ]]; }
swift build -c release --product sixgatectl >/dev/null
swift build -c release --product sixgated >/dev/null
swift build -c release --product udpblast >/dev/null
BIN=$(swift build -c release --show-bin-path)

id=sgbench$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for h in c6 gw s4 s6; do ip netns del $id-$h 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
x() { local h=$1; shift; ip netns exec $id-$h "$@"; }

for h in c6 gw s4 s6; do
    ip netns add $id-$h
    x $h sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    x $h ip link set lo up
done
x gw sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
link() {  # host, gw address, host address, default via
    ip -n $id-gw link add $1 type veth peer name eth0 netns $id-$1
    ip -n $id-gw addr add $2 dev $1 nodad 2>/dev/null || ip -n $id-gw addr add $2 dev $1
    ip -n $id-$1 addr add $3 dev eth0 nodad 2>/dev/null || ip -n $id-$1 addr add $3 dev eth0
    ip -n $id-gw link set $1 up
    ip -n $id-$1 link set eth0 up
    ip -n $id-$1 route add default via $4
}
link c6 2001:db8:1::1/64 2001:db8:1::2/64 2001:db8:1::1
link s6 2001:db8:2::1/64 2001:db8:2::2/64 2001:db8:2::1
link s4 203.0.113.1/24 203.0.113.2/24 203.0.113.1
S4IN6=2001:db8:64::cb00:7102

# Started with exec (ip netns exec execs the program), so each PID is the
# program's own and the cleanup can stop it.
ip netns exec $id-s4 iperf3 -s -B 203.0.113.2 >/dev/null 2>&1 & pids+=($!)
ip netns exec $id-s6 iperf3 -s -B 2001:db8:2::2 >/dev/null 2>&1 & pids+=($!)
sleep 0.5

# iperf3 TCP c6 -> the destination in Gbit/s: the median of three runs, since
# one run on a shared machine can be off by half.
tcp() {
    local runs=()
    for _ in 1 2 3; do
        runs+=("$(timeout $((SECONDS_PER_RUN + 20)) ip netns exec $id-c6 iperf3 -6 -c "$1" -t "$SECONDS_PER_RUN" -J 2>/dev/null \
            | python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' || echo 0)")
    done
    printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p
}
# The highest rate of 64-byte datagrams delivered with under 1% loss: offered
# rates rise by a quarter from 40,000 packets per second until one loses more,
# then three halvings of the gap narrow it down; prints the delivered rate and
# its loss. The load comes from udpblast (bench/udpblast: four connected flows,
# sendmmsg in batches) and is counted by two udpblast receivers sharing the
# port: iperf3 cannot offer more than about 150,000 packets per second here.
# The generator has its own ceiling: compare with the plain line.
udp() {  # destination, receiving host, its address[, gso]
    local best="0 0" lo=0 hi=0 pps=40000 line
    # A ping first, so that neighbour discovery and the pool mapping are
    # settled before anything is counted.
    ip netns exec $id-c6 ping -q -n -c 2 -i 0.2 -W 1 "$1" >/dev/null 2>&1 || true
    trial() {  # udp's arguments, $pps offered -> line="delivered loss%"; fails at 1% loss or more
        local receivers=() sent got
        for i in 1 2; do
            ip netns exec $id-$2 "$BIN/udpblast" recv "$3" 9000 $((SECONDS_PER_RUN + 2)) > "$work/recv.$i" & receivers+=($!)
        done
        sleep 0.3
        sent=$(ip netns exec $id-c6 "$BIN/udpblast" send "$1" 9000 "$pps" "$SECONDS_PER_RUN" 4 ${4:-})
        wait "${receivers[@]}" || true
        got=$(( $(tail -1 "$work/recv.1") + $(tail -1 "$work/recv.2") ))
        line=$(awk -v s="$sent" -v g="$got" -v t="$SECONDS_PER_RUN" 'BEGIN { printf "%.0f %.2f", g / t, (s > 0 ? 100 * (s - g) / s : 100) }')
        awk -v l="${line#* }" 'BEGIN { exit !(l < 1) }'
    }
    keep() { awk -v a="${line% *}" -v b="${best% *}" 'BEGIN { exit !(a > b) }' && best=$line || true; }
    while [ $pps -le 2000000 ]; do
        if trial "$@"; then keep; lo=$pps; pps=$((pps * 5 / 4)); else hi=$pps; break; fi
    done
    for _ in 1 2 3; do
        [ $hi -gt 0 ] || break
        pps=$(((lo + hi) / 2))
        if trial "$@"; then keep; lo=$pps; else hi=$pps; fi
    done
    echo "$best"
}

plain_tcp=0 plain_pps=0 plain_loss=0 plain_gso=0
if want plain; then
    echo "== plain IPv6 forwarding c6 -> s6"
    plain_tcp=$(tcp 2001:db8:2::2); read -r plain_pps plain_loss <<<"$(udp 2001:db8:2::2 s6 2001:db8:2::2)"
    read -r plain_gso _ <<<"$(udp 2001:db8:2::2 s6 2001:db8:2::2 gso)"
fi

tayga_tcp=0 tayga_pps=0 tayga_loss=0 tayga_gso=0
if want tayga; then
    echo "== Tayga"
    mkdir -p "$work/tayga"
    cat > "$work/tayga.conf" <<CONF
tun-device nat64t
ipv4-addr 192.0.2.1
prefix 2001:db8:64::/96
dynamic-pool 192.0.2.128/25
data-dir $work/tayga
CONF
    x gw tayga -c "$work/tayga.conf" --mktun >/dev/null
    # The queue length sixgatectl gives its TUN devices (checked below), so
    # that both translators ride out the same scheduling delays.
    x gw ip link set nat64t up txqueuelen 2000
    x gw ip route add 192.0.2.128/25 dev nat64t
    x gw ip route add 2001:db8:64::/96 dev nat64t
    x gw nft add table ip taygabench
    x gw nft add chain ip taygabench post '{ type nat hook postrouting priority srcnat; }'
    x gw nft add rule ip taygabench post oifname s4 ip saddr 192.0.2.128/25 masquerade
    ip netns exec $id-gw tayga -c "$work/tayga.conf" --nodetach & pids+=($!)
    sleep 1
    tayga_tcp=$(tcp $S4IN6); read -r tayga_pps tayga_loss <<<"$(udp $S4IN6 s4 203.0.113.2)"
    read -r tayga_gso _ <<<"$(udp $S4IN6 s4 203.0.113.2 gso)"
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
    sleep 0.5
    x gw ip link del nat64t
    x gw nft delete table ip taygabench
fi

cat > "$work/sixgate.toml" <<CONF
prefix = "2001:db8:64::/96"
[gateway]
uplink4 = "s4"
inside6 = "c6"
clients = ["2001:db8:1::/64"]
[nat64]
datapath = "tun"
pool4 = "192.0.2.128/25"
address4 = "192.0.2.1"
[dns64]
enabled = false
[controller]
state_dir = "$work/state"
CONF
"$BIN/sixgatectl" apply "$work/sixgate.toml" --netns $id-gw >/dev/null
x gw ip link show sg-nat64 | grep -q "qlen 2000" || { echo "sg-nat64 has another queue length than Tayga's device" >&2; exit 1; }

# sixgated with nat64.datapath = $1: TCP, UDP and UDP from a GSO sender, and
# the CPU time (utime + stime, in clock ticks) sixgated spent in the TCP runs.
sixgate() {
    sed -i "s/^datapath = .*/datapath = \"$1\"/" "$work/sixgate.toml"
    ip netns exec $id-gw "$BIN/sixgated" translate --config "$work/sixgate.toml" 2>"$work/sixgated-$1.log" & pids+=($!)
    local pid=$! before after
    sleep 1
    grep -q "translator ready: $1" "$work/sixgated-$1.log" || { echo "sixgated did not start the $1 datapath:" >&2; cat "$work/sixgated-$1.log" >&2; exit 1; }
    before=$(awk '{ print $14 + $15 }' /proc/$pid/stat)
    result_tcp=$(tcp $S4IN6)
    after=$(awk '{ print $14 + $15 }' /proc/$pid/stat)
    result_cpu=$((after - before))
    read -r result_pps result_loss <<<"$(udp $S4IN6 s4 203.0.113.2)"
    read -r result_gso _ <<<"$(udp $S4IN6 s4 203.0.113.2 gso)"
    kill $pid; wait $pid 2>/dev/null || true
    sleep 0.5
}

# Not by default: plain IPv6 forwarding again, through sixgate's nftables
# table (conntrack on), to tell what the table costs from what translating does.
tabled_tcp=0 tabled_pps=0 tabled_loss=0 tabled_gso=0
if want plain_table; then
    echo "== plain IPv6 forwarding c6 -> s6 through sixgate's table"
    tabled_tcp=$(tcp 2001:db8:2::2); read -r tabled_pps tabled_loss <<<"$(udp 2001:db8:2::2 s6 2001:db8:2::2)"
    read -r tabled_gso _ <<<"$(udp 2001:db8:2::2 s6 2001:db8:2::2 gso)"
fi
ours_tcp=0 ours_cpu=0 ours_pps=0 ours_loss=0 ours_gso=0
if want tun; then
    echo "== sixgate (TUN)"
    sixgate tun
    ours_tcp=$result_tcp ours_cpu=$result_cpu ours_pps=$result_pps ours_loss=$result_loss ours_gso=$result_gso
fi
kern_tcp=0 kern_cpu=0 kern_pps=0 kern_loss=0 kern_gso=0
if want kernel; then
    echo "== sixgate (kernel)"
    sixgate kernel
    kern_tcp=$result_tcp kern_cpu=$result_cpu kern_pps=$result_pps kern_loss=$result_loss kern_gso=$result_gso
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
printf '%-22s %12s %14s %8s %16s %12s\n' path "TCP Gbit/s" "UDP64 pkt/s" "loss %" "UDP64 GSO pkt/s" "CPU (ticks)"
echo "(TCP: the median of three iperf3 runs. UDP64: the highest rate delivered with under 1% loss, offered"
echo " rates rising by a quarter from 40,000/s, then three halvings of the last step;"
echo " GSO: the same datagrams sent 16 to a message with UDP_SEGMENT, as QUIC stacks send them;"
echo " CPU: sixgated's user and system time during the three TCP runs)"
printf '%-22s %12s %14s %8s %16s %12s\n' "plain forwarding" "$plain_tcp" "$plain_pps" "$plain_loss" "$plain_gso" "-"
want plain_table && printf '%-22s %12s %14s %8s %16s %12s\n' "plain through table" "$tabled_tcp" "$tabled_pps" "$tabled_loss" "$tabled_gso" "-"
printf '%-22s %12s %14s %8s %16s %12s\n' "tayga" "$tayga_tcp" "$tayga_pps" "$tayga_loss" "$tayga_gso" "-"
printf '%-22s %12s %14s %8s %16s %12s\n' "sixgate (TUN)" "$ours_tcp" "$ours_pps" "$ours_loss" "$ours_gso" "$ours_cpu"
printf '%-22s %12s %14s %8s %16s %12s\n' "sixgate (kernel)" "$kern_tcp" "$kern_pps" "$kern_loss" "$kern_gso" "$kern_cpu"
tcp_ratio=$(ratio "$ours_tcp" "$tayga_tcp"); pps_ratio=$(ratio "$ours_pps" "$tayga_pps"); gso_ratio=$(ratio "$ours_gso" "$tayga_gso")
echo "sixgate (TUN) / tayga: TCP ${tcp_ratio}x, small UDP ${pps_ratio}x, small UDP from a GSO sender ${gso_ratio}x"
ktcp=$(ratio "$kern_tcp" "$plain_tcp"); kpps=$(ratio "$kern_pps" "$plain_pps"); kgso=$(ratio "$kern_gso" "$plain_gso")
kcpu=$(awk -v k="$kern_cpu" -v t="$ours_cpu" 'BEGIN { printf "%.3f", (t > 0 ? k / t : 1) }')
echo "sixgate (kernel) / plain forwarding: TCP ${ktcp}x, small UDP ${kpps}x, small UDP from a GSO sender ${kgso}x;" \
     "sixgated's CPU ${kcpu} of the TUN run's"
verdict() { awk -v m="$1" -v g="$2" 'BEGIN { exit !(m >= g) }' && echo PASS || echo FAIL; }
echo "target tcp_vs_tayga ${tcp_ratio} 5 $(verdict "$tcp_ratio" 5)"
echo "target udp64_vs_tayga ${pps_ratio} 2 $(verdict "$pps_ratio" 2)"
echo "target udp64_gso_sender_vs_tayga ${gso_ratio} 2 $(verdict "$gso_ratio" 2)"
loss_ok=$(awk -v l="$ours_loss" 'BEGIN { exit !(l < 1) }' && echo PASS || echo FAIL)
echo "target udp64_loss ${ours_loss}% 1% $loss_ok"
echo "target kernel_tcp_vs_plain ${ktcp} 0.95 $(verdict "$ktcp" 0.95)"
echo "target kernel_udp64_vs_plain ${kpps} 0.95 $(verdict "$kpps" 0.95)"
echo "target kernel_udp64_gso_sender_vs_plain ${kgso} 0.9 $(verdict "$kgso" 0.9)"
echo "target kernel_cpu_vs_tun ${kcpu} 0.05 $(awk -v m="$kcpu" 'BEGIN { exit !(m < 0.05) }' && echo PASS || echo FAIL)"
