# usher. `make test` is what CI runs (via .ci/run); `make fuzz` alone runs only the fuzzers.
# PKGS narrows every target to some packages, e.g. make test PKGS=./internal/testenv/...
GO       ?= go
FUZZTIME ?= 10s
PKGS     ?= ./...
# usher runs on Linux; the module must still build (and vet) on these, so that it can be read,
# tested in part and packaged there (bench's loads refuse to run off Linux).
CROSS_GOOS ?= darwin freebsd

.PHONY: test deps vet unit fuzz build run-dev deb deb-test

# Tests that need Dovecot fail instead of skipping: `make test` installs it first.
export USHER_REQUIRE_DOVECOT ?= 1

test: deps vet
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	$(if $(filter ./...,$(PKGS)),./scripts/test-deb.sh)
	$(MAKE) --no-print-directory fuzz

deps:
	./scripts/test-deps.sh

vet:
	$(GO) vet $(PKGS)
	@set -e; for os in $(CROSS_GOOS); do echo "vet: GOOS=$$os"; CGO_ENABLED=0 GOOS=$$os $(GO) vet $(PKGS); done

unit:
	$(GO) test -race -count=1 $(PKGS)

# Every Fuzz* target of every package, one at a time (go test -fuzz takes one target and one
# package), FUZZTIME each. New failing inputs land in the package's testdata/fuzz.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  list=$$($(GO) test -list '^Fuzz' $$pkg); \
	  for target in $$(echo "$$list" | grep '^Fuzz' || true); do \
	    echo "fuzz: $$pkg $$target ($(FUZZTIME))"; \
	    ./scripts/fuzz-one.sh $(GO) $$pkg $$target $(FUZZTIME); \
	  done; \
	done

build:
	$(GO) build -o bin/usher ./cmd/usher

# The Debian package (bin/usher_VERSION_ARCH.deb); deb-test installs, checks and purges it (root).
deb: ; ./scripts/build-deb.sh
deb-test: ; ./scripts/test-deb.sh

run-dev:
	$(GO) run ./cmd/usher serve -dev

# benchmarks (docs/benchmarks.md): quick = seconds, small N; bench = the documented full run
.PHONY: bench-quick bench bench-shared
bench-quick: ; $(GO) run ./bench -mode quick
bench: ; $(GO) run ./bench -mode full -pin -profile bench-profiles -out bench-results.md
bench-shared: ; $(GO) run ./bench -mode full -out bench-results-shared.md
