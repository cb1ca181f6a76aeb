#!/usr/bin/env bash
# Builds sixgate_VERSION_ARCH.deb with dpkg's own tools: `make install`
# stages the files (the same install an operator runs from source, so the two
# cannot differ), dpkg-shlibdeps computes Depends from what the binaries link,
# dpkg-deb builds the archive as root-owned files. A debian/rules would only
# call make install; SwiftPM, not debhelper, builds.
#
#   dist/deb/build.sh OUTDIR [VERSION]
# VERSION defaults to the release number, plus the commit's date and hash
# (0.1.0+git20261203.4e4820e), so that every later commit sorts higher.
# BINDIR=DIR packages binaries already built.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
number=$(sed -n 's/.*static let number = "\(.*\)".*/\1/p' Sources/Common/Version.swift)
version=${2:-$number+git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short=7 HEAD)}
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
shlibs=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage" "$shlibs"' EXIT

make --no-print-directory -s install DESTDIR="$stage" BINDIR="${BINDIR:-}" >&2
for b in sixgatectl sixgated 6bed4peer; do
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/sbin/$b"
done
install -D -m 0644 dist/deb/default "$stage/etc/default/sixgate"
install -D -m 0644 dist/deb/copyright "$stage/usr/share/doc/sixgate/copyright"
# A native package's changelog: this build.
{
    echo "sixgate ($version) unstable; urgency=medium"
    echo
    echo "  * Built from commit $(git rev-parse --short=12 HEAD)."
    echo
    echo " -- sixgate authors <sixgate@example.org>  $(git log -1 --format=%cD)"
} | gzip -9n > "$stage/usr/share/doc/sixgate/changelog.gz"

mkdir -p "$stage/DEBIAN" "$shlibs/debian"
install -m 0755 dist/deb/postinst dist/deb/prerm dist/deb/postrm "$stage/DEBIAN/"
# dpkg-shlibdeps reads the package's name from a debian/control.
printf 'Source: sixgate\n\nPackage: sixgate\nArchitecture: any\n' > "$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O -e"$stage/usr/sbin/sixgatectl" -e"$stage/usr/sbin/sixgated" -e"$stage/usr/sbin/6bed4peer" \
          | sed -n 's/^shlibs:Depends=//p')
cat > "$stage/DEBIAN/control" <<CONTROL
Package: sixgate
Version: $version
Architecture: $arch
Maintainer: sixgate authors <sixgate@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Recommends: nftables, iproute2
Section: net
Priority: optional
Description: IPv6-only gateway: NAT64/SIIT, DNS64, 6bed4 and multiplexer
 sixgate is the entrance of an IPv6-only network, from one config file with
 one NAT64 prefix: a NAT64/SIIT translator (tc-BPF in the kernel, userspace
 through TUN where that cannot run), a DNS64 server, a 6bed4 router and
 peer (IPv6 over UDP/IPv4 through NAT), and a multiplexer that shares one
 IPv4 address among IPv6-only servers by TLS server name, HTTP Host or port.
 .
 sixgatectl applies the config to nftables, routes and links, and audits
 them; sixgated runs the parts under systemd.
CONTROL
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) > "$stage/DEBIAN/conffiles"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/sixgate_${version}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
