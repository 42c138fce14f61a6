# amavisgo: build, run, test, benchmark, fuzz.
GO      ?= go
BIN     := bin/amavisd
CONFIG  ?= etc/amavisd.toml
FUZZTIME ?= 60s

.PHONY: build run test bench fuzz vet clean

build:
	$(GO) build -o $(BIN) ./cmd/amavisd

# Sets up the default layout (the amavis user, MYHOME, TEMPBASE) and runs in the foreground.
run: build
	scripts/setup $(CONFIG)
	$(BIN) -c $(CONFIG) foreground

# The whole test suite: unit, protocol, real clamd, real Postfix, real archivers.
test:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...
	$(GO) test -race -timeout 30m ./...

bench: build
	@echo "bench: see bench/"

fuzz:
	@echo "fuzz: no targets yet"

clean:
	rm -rf bin
