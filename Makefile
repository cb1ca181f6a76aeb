# sixgate — the two commands of the README:
#   make test   install what is missing, build, run every test (unit + namespaces)
#   make demo   install what is missing, build, run the demo
SHELL := /bin/bash
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
PACKAGES := $(shell grep -v '^\#' dist/debian-packages)
BIN = .build/debug

.PHONY: all build test demo deps golden install clean fuzz

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
# without it. They run in a mount namespace of their own, so that the bpffs
# each gateway pins its BPF program in never reaches the machine's mounts.
# The last line is swift test's own summary.
PRIVATE_MOUNTS = unshare --mount --propagation private
test: build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make test needs root: the integration tests create network namespaces" >&2; exit 1; fi
	$(PRIVATE_MOUNTS) $(SWIFT) test

# The demo: a live gateway in throwaway namespaces (Tests/Demo): sixgatectl
# apply and sixgated run in gw with DNS64, the translator and the 6bed4 router
# from one config; the seed's three scenarios with real clients; status and
# verify; then teardown. KEEP=1 keeps it up until Ctrl-C.
demo: build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make demo needs root: it creates network namespaces" >&2; exit 1; fi
	KEEP="$(KEEP)" $(PRIVATE_MOUNTS) $(BIN)/sixgate-demo $(BIN)

# Fuzzes every parser with libFuzzer (Tests/Fuzz): FUZZ_SECONDS each (or
# FUZZ_RUNS executions, whichever ends first, in processes of FUZZ_CHUNK
# executions, each checked for leaks as it ends), FUZZ_TARGETS to choose. A
# crash is saved in Tests/Fuzz/Corpus/HARNESS/crash-*, which `make test`
# replays from then on; commit it with its fix.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= 10000000
FUZZ_CHUNK ?= 500000
FUZZ_TARGETS ?= engine dns dns64 sixbedfour config control differential mux
fuzz: deps
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) build --product sixgate-fuzz -c release --build-path .build/fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -enable-testing -Xswiftc -use-ld=lld
	@for t in $(FUZZ_TARGETS); do Tests/Fuzz/run.sh $$t $(FUZZ_SECONDS) $(FUZZ_RUNS) $(FUZZ_CHUNK) || exit 1; done

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
