# recon — see README.md. Every target works on a fresh Debian 12 machine
# with Go 1.26 once .ci/run (or the README's apt line) installed the peers.
GO       ?= go
BIN      := bin/recon
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PKGS     := ./...
FUZZTIME ?= 10s
CONFIG   ?= configs/recon.toml

.PHONY: all build run test test-short bench fuzz lint proto install clean

all: lint build test

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/recon

## run: start the agent on configs/recon.toml (embedded SQLite store, real checks)
run: build
	./$(BIN) agent -c $(CONFIG)

## test: every test, integration tests against the real peers included
test:
	$(GO) test -count=1 -timeout 25m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: the SPEC §13 benchmarks, each next to its peer baseline in the same run
bench:
	$(GO) run ./internal/benchtable -out docs/benchmarks.md

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## install: binary, example config (not overwritten) and the systemd unit
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)/usr/local/bin/recon
	test -e $(DESTDIR)/etc/recon/recon.toml || install -D -m 0640 configs/recon.toml $(DESTDIR)/etc/recon/recon.toml
	install -D -m 0644 configs/recon.service $(DESTDIR)/lib/systemd/system/recon.service
	install -D -m 0644 README.md $(DESTDIR)/usr/local/share/doc/recon/README.md

clean:
	rm -rf bin data
