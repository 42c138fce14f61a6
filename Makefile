# amavisgo: build, run, test, benchmark, fuzz.
GO      ?= go
BIN     := bin/amavisd
CONFIG  ?= etc/amavisd.toml
FUZZTIME ?= 60s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run selftest test deps bench fuzz deb clean

build:
	$(GO) build -o $(BIN) ./cmd/amavisd

# Sets up the default layout (the amavis user, MYHOME, TEMPBASE) and runs in the foreground.
run: build
	scripts/setup $(CONFIG)
	$(BIN) -c $(CONFIG) foreground

# The EICAR self-test of the configuration: clean, EICAR, EICAR in a zip, a banned .exe.
selftest: build
	$(BIN) -c $(CONFIG) selftest

# The Debian packages the tests talk to, installed when missing (needs root then).
deps:
	scripts/install-deps

# The whole test suite: unit, protocol, real clamd, real Postfix, real archivers.
# Temporary files go to a tmpfs when there is one, as TEMPBASE should in production.
test: export TMPDIR := $(shell scripts/tmpdir)
test: deps
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd bench && $(GO) run $(STATICCHECK) ./...
	$(GO) test -race -timeout 30m ./...
	$(GO) test -count=1 -run 'TestBombs|TestMIMEWorstCases' ./unpack
	cd bench && $(GO) test ./...

# Side by side with Debian's Perl amavisd-new and the harness's ceiling (needs root, postfix,
# clamav-daemon, amavisd-new). Outputs bench/out/results.md, results.csv, msgs_per_s.png.
# A quicker look: make bench BENCHFLAGS='-reps 1 -seconds 2 -sessions 1,8'
# Both daemons get TEMPBASE on a tmpfs, as amavis's own docs advise.
BENCHFLAGS ?=
bench: export TMPDIR := $(shell scripts/tmpdir)
bench: build
	cd bench && $(GO) run ./cmd/benchrun -ours ../$(BIN) -out out $(BENCHFLAGS)

# Every fuzz target for FUZZTIME each (a duration, or Nx executions), to the end whatever
# one finds, then a summary per target (not part of make test). scripts/fuzz tells more.
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz

# The Debian package bin/amavisgo_<version>_<arch>.deb (scripts/mkdeb; needs dpkg-deb).
deb:
	scripts/mkdeb

clean:
	rm -rf bin
