# sixgate — the two commands of the README:
#   make test   install what is missing, build, run every test (unit + namespaces)
#   make demo   install what is missing, build, run the demo
SHELL := /bin/bash
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
PACKAGES := $(shell grep -v '^\#' dist/debian-packages)
BIN = .build/debug

.PHONY: all build test demo deps golden install clean

all: build

# Installs only what is missing, so a prepared machine pays nothing.
deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		if [ "$$(id -u)" -ne 0 ]; then echo "need root to install packages: run as root" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

# Integration tests build network namespaces and need root; they fail, not skip,
# without it. The last line is swift test's own summary.
test: build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make test needs root: the integration tests create network namespaces" >&2; exit 1; fi
	$(SWIFT) test

# The demo so far: a throwaway gateway namespace with the interfaces the full
# example names; check the config, plan, apply, show the table and routes,
# audit, then remove. Later issues grow it into a live gateway. KEEP=1 leaves
# the namespace for exploring (ip netns exec sgdemo …).
demo: build
	@ns=sgdemo; ctl="$(BIN)/sixgatectl"; cfg=examples/full.toml; \
	ip netns del $$ns 2>/dev/null || true; \
	[ -n "$(KEEP)" ] || trap 'ip netns del '"$$ns"' 2>/dev/null' EXIT; \
	ip netns add $$ns && \
	ip -n $$ns link add eth0 type veth peer name eth1 && \
	ip -n $$ns link set eth0 up && ip -n $$ns link set eth1 up && \
	echo "== sixgatectl check $$cfg" && $$ctl check $$cfg && \
	echo && echo "== sixgatectl plan $$cfg --netns $$ns (first lines)" && $$ctl plan $$cfg --netns $$ns | head -15 && \
	echo && echo "== sixgatectl apply $$cfg --netns $$ns" && $$ctl apply $$cfg --netns $$ns && \
	echo && echo "== nft list chain inet sixgate forward" && ip netns exec $$ns nft list chain inet sixgate forward && \
	echo && echo "== ip route show proto sixgate" && ip -n $$ns route show proto 164 && ip -n $$ns -6 route show proto 164 && \
	echo && echo "== a rule deleted by hand, then sixgatectl audit" && \
	ip netns exec $$ns nft flush chain inet sixgate postrouting && \
	{ $$ctl audit $$cfg --netns $$ns; echo "(audit exit status $$?)"; } && \
	echo && echo "== sixgatectl apply again, then audit" && $$ctl apply $$cfg --netns $$ns && $$ctl audit $$cfg --netns $$ns && \
	if [ -z "$(KEEP)" ]; then echo && echo "== sixgatectl remove" && $$ctl remove $$cfg --netns $$ns; \
	else echo && echo "namespace $$ns kept: ip netns exec $$ns nft list ruleset; ip netns del $$ns when done"; fi

# Regenerates the rendered tables in nft/ after a deliberate change.
golden: build
	@for f in examples/*.toml; do n=$$(basename $$f .toml); \
		{ echo "# The table that $$f implies, as \`sixgatectl render $$f\` prints it."; \
		  echo "# A test fails when rendering changes and this file was not updated: regenerate it with \`make golden\`."; \
		  $(BIN)/sixgatectl render $$f; } > nft/$$n.nft; done

# Installs the binaries, the systemd units, the example configs and the name
# of sixgate's route protocol. DESTDIR stages it elsewhere; CONFIGURATION=debug
# installs the debug build, BINDIR=DIR binaries already built (the tests do).
# An existing config is never touched:
# the example lands beside it as sixgate.toml.example.
PREFIX ?= /usr
CONFIGURATION ?= release
UNITDIR ?= /lib/systemd/system
install:
	@bin="$(BINDIR)"; if [ -z "$$bin" ]; then $(SWIFT) build -c $(CONFIGURATION) >&2 && bin=$$($(SWIFT) build -c $(CONFIGURATION) --show-bin-path); fi; \
	for b in sixgated sixgatectl 6bed4peer; do install -D -m 0755 $$bin/$$b $(DESTDIR)$(PREFIX)/sbin/$$b || exit 1; done
	install -D -m 0644 dist/systemd/sixgate.service $(DESTDIR)$(UNITDIR)/sixgate.service
	install -D -m 0644 dist/systemd/6bed4peer.service $(DESTDIR)$(UNITDIR)/6bed4peer.service
	install -D -m 0644 examples/full.toml $(DESTDIR)/etc/sixgate/sixgate.toml.example
	install -D -m 0644 dist/systemd/6bed4peer.env.example $(DESTDIR)/etc/sixgate/6bed4peer.env.example
	install -D -m 0644 dist/iproute2/sixgate.conf $(DESTDIR)/etc/iproute2/rt_protos.d/sixgate.conf
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/sixgate/README.md
	for f in examples/*.toml; do install -D -m 0644 $$f $(DESTDIR)$(PREFIX)/share/doc/sixgate/examples/$$(basename $$f); done

clean:
	rm -rf .build
