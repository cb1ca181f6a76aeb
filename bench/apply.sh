#!/usr/bin/env bash
# Benchmark of the controller: apply, no-op apply and audit of a config with
# 10,000 static mappings and 10,000 DNS64 client entries, next to `nft -f`
# loading the same rendered table. Not part of `make test`.
#
# The IPv4 sides of the mappings come from 198.18.0.0/15, the range reserved for
# benchmarks (RFC 2544): the documentation ranges hold too few addresses. No
# packet is sent; everything happens in namespaces this script creates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "needs root: it creates network namespaces" >&2; exit 1; }
N=${N:-10000}
RUNS=${RUNS:-5}
swift build -c release --product sixgatectl >/dev/null
BIN=$(swift build -c release --show-bin-path)/sixgatectl

work=$(mktemp -d)
ns=sgbench-$$
trap 'ip netns del $ns-a 2>/dev/null; ip netns del $ns-b 2>/dev/null; rm -rf "$work"' EXIT

config=$work/big.toml
python3 - "$N" > "$config" <<'PY'
import sys, ipaddress
n = int(sys.argv[1])
print('prefix = "2001:db8:64::/96"')
print('[gateway]\nuplink4 = "eth0"\ninside6 = "eth1"\nclients = ["2001:db8:1::/64"]')
print('[nat64]\npool4 = "192.0.2.0/24"')
base4 = int(ipaddress.IPv4Address("198.18.0.0"))
base6 = int(ipaddress.IPv6Address("2001:db8:2::"))
for i in range(n):
    # Every other address, so that neither the set nor the routes can merge them.
    print(f'[[nat64.eam]]\nipv4 = "{ipaddress.IPv4Address(base4 + 2 * i)}/32"\nipv6 = "{ipaddress.IPv6Address(base6 + 2 * i)}/128"')
allow = ", ".join(f'"2001:db8:{0x1000 + i // 0x8000:x}:{(2 * i) % 0x10000:x}::/64"' for i in range(n))
print(f'[dns64]\nupstreams = ["2001:db8:53::53"]\nallow = [{allow}]')
PY
"$BIN" render "$config" > "$work/big.nft"

fresh() {  # a namespace with the two interfaces the config names
    ip netns del "$1" 2>/dev/null || true
    ip netns add "$1"
    ip -n "$1" link add eth0 type veth peer name eth1
    ip -n "$1" link set eth0 up
    ip -n "$1" link set eth1 up
}
ms() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null || { echo "failed: $*" >&2; kill $$; }
    e=$(date +%s%N)
    echo $(( (e - s) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

apply_ms=(); noop_ms=(); audit_ms=(); nft_ms=()
for _ in $(seq "$RUNS"); do
    fresh "$ns-a"
    apply_ms+=("$(ms "$BIN" apply "$config" --netns "$ns-a")")
    noop_ms+=("$(ms "$BIN" apply "$config" --netns "$ns-a")")
    audit_ms+=("$(ms "$BIN" audit "$config" --netns "$ns-a")")
    fresh "$ns-b"
    nft_ms+=("$(ms ip netns exec "$ns-b" nft -f "$work/big.nft")")
done
# A fast apply that did not converge would be worthless: check the result.
"$BIN" audit "$config" --netns "$ns-a" >/dev/null || { echo "apply did not converge: audit reports drift" >&2; exit 1; }
routes=$(ip -n "$ns-a" route show proto 164 | wc -l)
[ "$routes" -eq $((N + 1)) ] || { echo "expected $((N + 1)) routes, found $routes" >&2; exit 1; }

apply=$(printf '%s\n' "${apply_ms[@]}" | median)
noop=$(printf '%s\n' "${noop_ms[@]}" | median)
audit=$(printf '%s\n' "${audit_ms[@]}" | median)
nft=$(printf '%s\n' "${nft_ms[@]}" | median)
ratio=$(awk -v a="$apply" -v b="$nft" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')

echo "config: $N mappings, $N DNS64 client prefixes; median of $RUNS runs"
echo "apply from empty   ${apply} ms   (table, $routes IPv4 routes, links, sysctls)"
echo "no-op apply        ${noop} ms"
echo "audit              ${audit} ms"
echo "nft -f same table  ${nft} ms"
echo "ratio apply/nft    ${ratio}"
verdict() { awk -v m="$2" -v g="$3" 'BEGIN { exit !(m <= g) }' && echo PASS || echo FAIL; }
echo "target apply_from_empty ${apply}ms 1000ms $(verdict x "$apply" 1000)"
echo "target noop_apply ${noop}ms 200ms $(verdict x "$noop" 200)"
echo "target audit ${audit}ms 500ms $(verdict x "$audit" 500)"
echo "target apply_vs_nft_ratio ${ratio} 1.5 $(verdict x "$ratio" 1.5)"
