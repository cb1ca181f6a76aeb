#!/usr/bin/env bash
# Checks the Debian package as an operator meets it: lintian, the files it
# carries, and install, upgrade, remove and purge with dpkg in throwaway
# roots. Each root is an overlay of this machine's own (its dpkg database and
# libraries; the Swift toolchain hidden), chrooted into, inside a mount and
# network namespace of the script's own: what dpkg and sixgatectl do there
# never reaches the machine, and what changed is exactly the overlay's upper
# layer. Run by `make check-deb` (and CI); needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "dist/deb/check.sh needs root: it builds throwaway roots in namespaces" >&2; exit 1; }
# Two builds of one tree, the second a higher version: the upgrade. Built
# before the namespaces (SwiftPM's plugins want a loopback).
if [ -z "${SIXGATE_CHECK_UNSHARED:-}" ]; then
    debs=.build/deb-check
    rm -rf "$debs"
    first=$(dist/deb/build.sh "$debs" 0.1.0~check1)
    second=$(BINDIR="$(swift build -c release --static-swift-stdlib --build-path .build/static --show-bin-path)" dist/deb/build.sh "$debs" 0.1.0~check2)
    exec env SIXGATE_CHECK_UNSHARED=1 FIRST="$first" SECOND="$second" unshare --mount --net --propagation private bash "$0" "$@"
fi
first=$FIRST second=$SECOND

work=$(mktemp -d)
mount -t tmpfs -o size=4g tmpfs "$work"
trap 'umount -R "$work" 2>/dev/null || umount -l "$work"; rmdir "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
section() { echo "== $*"; before=$failures; }
pass() { [ "$failures" -ne "$before" ] || echo "ok: $*"; }

section lintian
lintian --fail-on error "$first" || fail "lintian reports errors"
pass "lintian: no errors"

section "dpkg -c"
listed=$(dpkg-deb -c "$first" | awk '{print $6}' | sed 's|^\./|/|')
expected=(/etc/sixgate/sixgate.toml.example /etc/sixgate/6bed4peer.env.example /etc/iproute2/rt_protos.d/sixgate.conf /etc/default/sixgate
          /lib/systemd/system/sixgate.service /lib/systemd/system/6bed4peer.service /usr/share/man/man5/sixgate.toml.5.gz
          /usr/share/doc/sixgate/README.md /usr/share/doc/sixgate/copyright /usr/share/doc/sixgate/changelog.gz
          /usr/share/sixgate/grafana/sixgate.json /usr/share/sixgate/prometheus/sixgate.rules.yml)
for c in sixgatectl sixgated 6bed4peer; do
    expected+=(/usr/sbin/$c /usr/share/man/man8/$c.8.gz /usr/share/bash-completion/completions/$c
               /usr/share/zsh/vendor-completions/_$c /usr/share/fish/vendor_completions.d/$c.fish)
done
for f in examples/*.toml docs/*.md; do [ -e "$f" ] && expected+=(/usr/share/doc/sixgate/$f); done
for f in "${expected[@]}"; do grep -qx "$f" <<<"$listed" || fail "the package lacks $f"; done
[ "$(dpkg-deb -f "$first" Depends)" != "" ] || fail "no Depends"
pass "${#expected[@]} expected files listed; Depends: $(dpkg-deb -f "$first" Depends)"

# A fresh throwaway root: $root/merged, chrooted into by `inroot`.
n=0
fresh() {
    n=$((n + 1)); root=$work/root$n; mkdir -p "$root/upper" "$root/work" "$root/merged"
    # Whatever of sixgate this machine has itself (an install from source,
    # a test's state) is hidden: whiteouts, as overlayfs marks deletions.
    for f in "${expected[@]}" /etc/sixgate /var/lib/sixgate; do
        if [ -e "$f" ]; then mkdir -p "$root/upper$(dirname "$f")"; mknod "$root/upper$f" c 0 0; fi
    done
    (cd "$root/upper" && find . ! -type d | sed 's|^\.||') > "$root/hidden"
    mount -t overlay overlay -o lowerdir=/,upperdir="$root/upper",workdir="$root/work" "$root/merged"
    mount -t proc proc "$root/merged/proc"
    mount -t sysfs sysfs "$root/merged/sys"
    mount -t bpf bpf "$root/merged/sys/fs/bpf"
    mount --rbind /dev "$root/merged/dev"
    mount -t tmpfs tmpfs "$root/merged/run"
    # The installed binaries must run without the toolchain they were built with.
    mount -t tmpfs tmpfs "$root/merged/opt"
}
inroot() { chroot "$root/merged" "$@"; }
# dpkg -i of a package built outside the root.
deb() { cp "$1" "$root/merged/sixgate.deb"; inroot dpkg -i /sixgate.deb >/dev/null; local rc=$?; rm -f "$root/merged/sixgate.deb"; return $rc; }
table() { nft list table inet sixgate >/dev/null 2>&1; }
# Files that a purge may leave: dpkg's and man-db's own records, and the
# operator's config. Anything else is the package's leftover.
leftovers() {
    (cd "$root/upper" && find . ! -type d | sed 's|^\.||') | grep -vxF -f "$root/hidden" \
        | grep -Ev '^/(var/lib/dpkg/|var/log/|var/cache/man/|var/cache/debconf/)' \
        | grep -Evx "${1:-}" || true
}
config() {
    ip link show eth0 >/dev/null 2>&1 || { ip link add eth0 type veth peer name eth1; ip link set eth0 up; ip link set eth1 up; }
    install -D -m 0644 examples/minimal.toml "$root/merged/etc/sixgate/sixgate.toml"
}
wants=/etc/systemd/system/multi-user.target.wants/sixgate.service

section "install without a config, purge"
fresh
deb "$first" || fail "dpkg -i"
inroot sixgatectl --version | grep -q '^0\.1\.0' || fail "the installed sixgatectl does not run without the toolchain"
[ ! -e "$root/merged$wants" ] || fail "enabled without a config"
[ ! -e "$root/merged/var/lib/sixgate" ] || fail "state made at install"
inroot man -w sixgatectl | grep -q /usr/share/man/man8/sixgatectl.8.gz || fail "man sixgatectl does not find the page"
inroot man -w 5 sixgate.toml | grep -q /usr/share/man/man5/sixgate.toml.5.gz || fail "man 5 sixgate.toml does not find the page"
verify=$(inroot systemd-analyze verify /lib/systemd/system/sixgate.service /lib/systemd/system/6bed4peer.service 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify says: $verify"
inroot dpkg --purge sixgate >/dev/null || fail "dpkg --purge"
left=$(leftovers)
[ -z "$left" ] || fail "install and purge left: $left"
pass "installed, units verified, man pages found, purged clean"

section "with a config: install, apply, upgrade, remove, purge"
fresh
config
deb "$first" || fail "dpkg -i"
[ -L "$root/merged$wants" ] || fail "not enabled although a config exists"
inroot sixgatectl apply /etc/sixgate/sixgate.toml >/dev/null || fail "sixgatectl apply in the installed root"
table || fail "apply made no table"
echo "# the operator's note" >> "$root/merged/etc/default/sixgate"
deb "$second" || fail "upgrade"
[ "$(inroot dpkg-query -W -f='${Version}' sixgate)" = 0.1.0~check2 ] || fail "not upgraded"
table || fail "the upgrade dropped the nftables table"
[ -L "$root/merged$wants" ] || fail "the upgrade disabled the unit"
grep -q "the operator's note" "$root/merged/etc/default/sixgate" || fail "the upgrade overwrote a changed conffile"
inroot dpkg -r sixgate >/dev/null || fail "dpkg -r"
table || fail "removal without SIXGATE_REMOVE_ON_UNINSTALL=yes dropped the nftables table"
[ ! -e "$root/merged/usr/sbin/sixgated" ] || fail "removal left the binaries"
inroot dpkg --purge sixgate >/dev/null || fail "dpkg --purge"
[ ! -e "$root/merged/var/lib/sixgate" ] || fail "purge left the state"
[ -e "$root/merged/etc/sixgate/sixgate.toml" ] || fail "purge removed the operator's config"
left=$(leftovers /etc/sixgate/sixgate.toml)
[ -z "$left" ] || fail "install, upgrade and purge left: $left"
pass "enabled with a config, the table kept across upgrade and removal, purged clean"

section "removal with SIXGATE_REMOVE_ON_UNINSTALL=yes"
fresh
config
deb "$second" || fail "dpkg -i"
inroot sixgatectl apply /etc/sixgate/sixgate.toml >/dev/null || fail "sixgatectl apply in the installed root"
table || fail "apply made no table"
sed -i 's/^SIXGATE_REMOVE_ON_UNINSTALL=.*/SIXGATE_REMOVE_ON_UNINSTALL=yes/' "$root/merged/etc/default/sixgate"
inroot dpkg -r sixgate >/dev/null || fail "dpkg -r"
! table || fail "removal with SIXGATE_REMOVE_ON_UNINSTALL=yes kept the table"
pass "removal took back what apply made, as asked"

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed" >&2; exit 1; }
echo "the package checks pass"
