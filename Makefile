# sixgate — the two commands of the README:
#   make test   install what is missing, build, run every test (unit + namespaces)
#   make demo   install what is missing, build, run the demo
SHELL := /bin/bash
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
PACKAGES := $(shell grep -v '^\#' dist/debian-packages)
BIN = .build/debug

.PHONY: all build test demo deps golden clean

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

# For now the demo validates the full example inside a throwaway namespace and
# shows what it means; later issues grow it into a live gateway.
demo: build
	@ns=sgdemo-$$$$; \
	trap 'ip netns del '"$$ns"' 2>/dev/null' EXIT; \
	ip netns add $$ns && \
	echo "== sixgatectl check examples/full.toml (in namespace $$ns)" && \
	ip netns exec $$ns $(BIN)/sixgatectl check examples/full.toml

# Regenerates the rendered tables in nft/ after a deliberate change.
golden: build
	@for f in examples/*.toml; do n=$$(basename $$f .toml); \
		{ echo "# The table that $$f implies, as \`sixgatectl render $$f\` prints it."; \
		  echo "# A test fails when rendering changes and this file was not updated: regenerate it with \`make golden\`."; \
		  $(BIN)/sixgatectl render $$f; } > nft/$$n.nft; done

clean:
	rm -rf .build
