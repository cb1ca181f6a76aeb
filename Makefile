# sixgate — the two commands of the README:
#   make test   install what is missing, build, run every test (unit + namespaces)
#   make demo   install what is missing, build, run the demo
SHELL := /bin/bash
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
PACKAGES := $(shell grep -v '^\#' dist/debian-packages)
BIN = .build/debug

.PHONY: all build test demo deps golden install uninstall man completions deb check-deb clean fuzz

all: build

# Installs only what is missing, so a prepared machine pays nothing.
deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		if [ "$$(id -u)" -ne 0 ]; then echo "need root to install packages: run as root" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# generate-manual too: make man (and the tests that stage an install) use it.
build: deps
	$(SWIFT) build
	$(SWIFT) build --product generate-manual

# Integration tests build network namespaces and need root; they fail, not skip,
# without it. They run in a mount namespace of their own, so that the bpffs
# each gateway pins its BPF program in never reaches the machine's mounts.
# The last line is swift test's own summary.
PRIVATE_MOUNTS = unshare --mount --propagation private
test: build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make test needs root: the integration tests create network namespaces" >&2; exit 1; fi
	$(PRIVATE_MOUNTS) $(SWIFT) test

# The demo: a live gateway in throwaway namespaces (demo/Demo): sixgatectl
# apply and sixgated run in gw with DNS64, the translator and the 6bed4 router
# from one config; three scenarios with real clients; status and
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

# What install, man, completions and deb use: the binaries in BINDIR (the
# tests pass theirs), or else a build with CONFIGURATION. An installed build
# carries the Swift runtime inside it (--static-swift-stdlib): it needs no
# toolchain, and its Debian dependencies are only the system's libraries.
# It has a build directory of its own, so `swift build` is not redone.
CONFIGURATION ?= release
DIST_BUILD = $(SWIFT) build -c $(CONFIGURATION) --static-swift-stdlib --build-path .build/static
define binaries
bin="$(BINDIR)"; if [ -z "$$bin" ]; then for p in $(COMMANDS); do $(DIST_BUILD) --product $$p >&2 || exit 1; done; bin=$$($(DIST_BUILD) --show-bin-path); fi
endef
COMMANDS = sixgatectl sixgated 6bed4peer
GEN ?= .build/generated

# Man pages: sixgatectl(8), sixgated(8) and 6bed4peer(8) from the commands'
# own definitions (swift-argument-parser's generate-manual), and
# sixgate.toml(5) from the config schema, as the README's reference. Dated by
# the commit, so a rebuild gives the same pages.
man: deps
	@$(binaries); set -e; \
	date=$$(git log -1 --format=%cs 2>/dev/null || date -u +%F); \
	gm=$(BIN)/generate-manual; [ -x $$gm ] || $(SWIFT) build --product generate-manual >&2; \
	rm -rf $(GEN)/man; mkdir -p $(GEN)/man; \
	for b in $(COMMANDS); do $$gm $$bin/$$b --section 8 --date $$date --authors "the sixgate authors" -o $(GEN)/man; done; \
	$$bin/sixgatectl reference --format man --date $$date > $(GEN)/man/sixgate.toml.5

# bash, zsh and fish completions, from the commands' own definitions. The
# bash ones are sourced, not run: no #! line.
completions: deps
	@$(binaries); set -e; \
	rm -rf $(GEN)/completions; mkdir -p $(GEN)/completions/bash $(GEN)/completions/zsh $(GEN)/completions/fish; \
	for b in $(COMMANDS); do \
		$$bin/$$b --generate-completion-script bash | sed '1{/^#!/d}' > $(GEN)/completions/bash/$$b; \
		$$bin/$$b --generate-completion-script zsh > $(GEN)/completions/zsh/_$$b; \
		$$bin/$$b --generate-completion-script fish > $(GEN)/completions/fish/$$b.fish; \
	done

# Installs the binaries, the systemd units, man pages, completions, the
# example configs, the docs, the dashboard and alert rules, and the name of
# sixgate's route protocol. DESTDIR stages it elsewhere. An existing config is
# never touched: the examples land beside it as *.example.
PREFIX ?= /usr
UNITDIR ?= /lib/systemd/system
DOCDIR = $(DESTDIR)$(PREFIX)/share/doc/sixgate
SHAREDIR = $(DESTDIR)$(PREFIX)/share/sixgate
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
MANDIR = $(DESTDIR)$(PREFIX)/share/man
install: man completions
	@$(binaries); for b in $(COMMANDS); do install -D -m 0755 $$bin/$$b $(DESTDIR)$(PREFIX)/sbin/$$b || exit 1; done
	install -D -m 0644 -t $(DESTDIR)$(UNITDIR) dist/systemd/sixgate.service dist/systemd/6bed4peer.service
	install -D -m 0644 examples/full.toml $(DESTDIR)/etc/sixgate/sixgate.toml.example
	install -D -m 0644 dist/systemd/6bed4peer.env.example $(DESTDIR)/etc/sixgate/6bed4peer.env.example
	install -D -m 0644 dist/iproute2/sixgate.conf $(DESTDIR)/etc/iproute2/rt_protos.d/sixgate.conf
	install -D -m 0644 -t $(DOCDIR) README.md
	install -D -m 0644 -t $(DOCDIR)/examples examples/*.toml
	if [ -d docs ]; then install -D -m 0644 -t $(DOCDIR)/docs docs/*.md; fi
	install -D -m 0644 -t $(SHAREDIR)/grafana dist/grafana/sixgate.json
	install -D -m 0644 -t $(SHAREDIR)/prometheus dist/prometheus/sixgate.rules.yml
	for b in $(COMMANDS); do \
		install -D -m 0644 $(GEN)/completions/bash/$$b $(BASHDIR)/$$b && \
		install -D -m 0644 $(GEN)/completions/zsh/_$$b $(ZSHDIR)/_$$b && \
		install -D -m 0644 $(GEN)/completions/fish/$$b.fish $(FISHDIR)/$$b.fish || exit 1; \
		install -D -m 0644 $(GEN)/man/$$b.8 $(MANDIR)/man8/$$b.8 && gzip -9nf $(MANDIR)/man8/$$b.8 || exit 1; \
	done
	install -D -m 0644 $(GEN)/man/sixgate.toml.5 $(MANDIR)/man5/sixgate.toml.5 && gzip -9nf $(MANDIR)/man5/sixgate.toml.5

# The Debian package, built from what install stages (dist/deb/build.sh):
# .build/deb/sixgate_VERSION_ARCH.deb. VERSION= overrides the version.
deb: deps
	@dist/deb/build.sh .build/deb $(VERSION)

# The package as an operator meets it (dist/deb/check.sh): lintian, its
# files, and install, upgrade, remove and purge in throwaway roots.
check-deb: deps
	dist/deb/check.sh

# Removes what install put there. The config (/etc/sixgate/sixgate.toml),
# the state (/var/lib/sixgate) and what apply made on the system stay: run
# `sixgatectl remove --all` first to take the system back.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/sbin/,$(COMMANDS))
	rm -f $(DESTDIR)$(UNITDIR)/sixgate.service $(DESTDIR)$(UNITDIR)/6bed4peer.service
	rm -f $(DESTDIR)/etc/sixgate/sixgate.toml.example $(DESTDIR)/etc/sixgate/6bed4peer.env.example
	rm -f $(DESTDIR)/etc/iproute2/rt_protos.d/sixgate.conf
	rm -rf $(DOCDIR) $(SHAREDIR)
	rm -f $(addprefix $(BASHDIR)/,$(COMMANDS)) $(addprefix $(ZSHDIR)/_,$(COMMANDS)) $(addsuffix .fish,$(addprefix $(FISHDIR)/,$(COMMANDS)))
	rm -f $(addsuffix .8.gz,$(addprefix $(MANDIR)/man8/,$(COMMANDS))) $(MANDIR)/man5/sixgate.toml.5.gz
	-rmdir $(DESTDIR)/etc/sixgate 2>/dev/null

clean:
	rm -rf .build
