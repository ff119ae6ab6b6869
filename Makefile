# recon — see README.md. Every target works on a fresh Debian 12 machine
# with Go 1.26 once .ci/run (or the README's apt line) installed the peers.
GO       ?= go
BIN      := bin/recon
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PKGS     := ./...
FUZZTIME ?= 10s
CONFIG   ?= configs/recon.toml
TOOLS    := $(CURDIR)/bin/tools
# grpcnotrace: gRPC without golang.org/x/net/trace (its init maps ~3.5 MB
# of the binary into every agent); gosnmp_nodebug: no per-packet debug
# logging calls. Exported so tests build and run what `make build` ships.
export GOFLAGS := -tags=grpcnotrace,gosnmp_nodebug
# Pinned code generators for `make proto` (protoc itself is Debian's).
PROTOC_GEN_GO      := v1.36.12
PROTOC_GEN_GO_GRPC := v1.6.2
# Modules of their own: the plugin protocol, the SDK and the examples.
PLUGIN_MODS := plugins/proto plugins/sdk plugins/examples

.PHONY: all build run test test-plugins test-short bench soak fuzz lint proto ui install clean

all: lint build test

# CGO_ENABLED=0, as the Dockerfile: a static binary that does not load libc
# and ld.so (1.4 MB less resident); names resolve with Go's own resolver
# (/etc/hosts, DNS), not through NSS modules.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/recon

## run: start the agent on configs/recon.toml (embedded SQLite store, real checks)
run: build
	./$(BIN) agent -c $(CONFIG)

## test: every test, integration tests against the real peers included
test: test-plugins
	$(GO) test -count=1 -timeout 25m $(PKGS)

## test-plugins: the plugin protocol, SDK and example modules
test-plugins:
	@set -e; for m in $(PLUGIN_MODS); do echo "== $$m"; (cd $$m && $(GO) vet ./... && $(GO) test -count=1 ./...); done

test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: the SPEC §13 benchmarks, each next to its peer baseline in the same run
bench:
	$(GO) run ./internal/benchtable -out docs/benchmarks.md

## soak: only the soak, real agent → Postgres at 10,000 results/s for RECON_SOAK (default 10m)
soak:
	$(GO) run ./internal/benchtable -only Soak

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@set -e; for mod in . $(PLUGIN_MODS); do \
	  for pkg in $$(cd $$mod && $(GO) list ./...); do \
	    for t in $$(cd $$mod && $(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	      echo "== $$pkg $$t"; \
	      (cd $$mod && $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg); \
	    done; \
	  done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## proto: regenerate plugins/proto (Go) and the Python example's stubs
proto:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC)
	cd plugins/proto && protoc --plugin=protoc-gen-go=$(TOOLS)/protoc-gen-go --plugin=protoc-gen-go-grpc=$(TOOLS)/protoc-gen-go-grpc \
	  --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
	protoc -I plugins/proto -I plugins/proto/health --python_out=plugins/examples/python/gen \
	  --plugin=protoc-gen-grpc_python=$$(command -v grpc_python_plugin) --grpc_python_out=plugins/examples/python/gen \
	  plugin.proto health.proto

## ui: rebuild the web UI into agent/api/ui/dist (committed, so `go build` needs no npm)
ui:
	cd web && npm ci --no-audit --no-fund && npm run build

## install: binary, example config (not overwritten) and the systemd unit
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)/usr/local/bin/recon
	test -e $(DESTDIR)/etc/recon/recon.toml || install -D -m 0640 configs/recon.toml $(DESTDIR)/etc/recon/recon.toml
	install -D -m 0644 configs/recon.service $(DESTDIR)/lib/systemd/system/recon.service
	install -D -m 0644 README.md $(DESTDIR)/usr/local/share/doc/recon/README.md

clean:
	rm -rf bin data
