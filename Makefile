# The two commands a new user runs: `go run ./cmd/blobswarm demo` and `make test`.
GO        ?= go
BIN       ?= bin
GOTESTSUM := $(GO) run gotest.tools/gotestsum@v1.13.0
# Unit and integration tests: no root, no Docker needed; what needs them skips
# and says so in the summary.
TESTFLAGS ?= -count=1 -timeout 15m
BENCHTIME ?= 1x

.PHONY: build test e2e bench bench-fleet sim lint image clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

test:
	$(GOTESTSUM) --format pkgname-and-test-fails --format-hide-empty-pkg -- $(TESTFLAGS) ./...

# End-to-end: real programs (containerd, dockerd, the OCI conformance suite),
# as root. With REQUIRE_E2E=1 a missing program fails instead of skipping.
e2e:
	$(GOTESTSUM) --format standard-verbose -- -tags e2e $(TESTFLAGS) -timeout 40m ./integration/e2e/...

# The mirror against a distribution registry, one swarm download against
# plain HTTP (sizes via BENCH_BLOB_SIZE and BLOBSWARM_BENCH_SIZE, MiB), and a
# lazy pull's first ranges through a fleet against the origin (3 mirrors).
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./integration/bench/... ./blobswarm/swarm/
	$(GO) test -run '^$$' -bench LazyFirstRange -benchtime 3x -timeout 20m ./integration/fleet_test/

# The fleet benchmark (issue 5), as root: hosts in network namespaces on a
# tc-shaped bridge, a rollout through per-host caching mirrors and one
# through the swarm. Flags: -nodes -size -layers -link -origin-link
# -latency -mtu -runs -out -concurrency -bin (see integration/fleetbench).
FLEET ?= -nodes 8 -size 128MiB -layers 2 -link 100mbit
bench-fleet:
	$(GO) test -run '^$$' -bench Fleet -benchtime 1x -timeout 120m ./integration/fleetbench/ -args $(FLEET) -out $(CURDIR)/$(BIN)/fleet

# The fleet simulator (integration/swarmsim): the measured shapes it is
# checked against, then predictions for the fleet sizes in SIM; no root,
# no network. 10,000 hosts take minutes.
SIM ?= -hosts 4,8,16,32,64,1000,10000 -size 16MiB -layers 2 -link 10mbit -origin-link 100mbit -tracker-link 100mbit
sim:
	$(GO) run ./integration/swarmsim/cmd/swarmsim $(SIM)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./integration/...

# No base image is pulled: the static binary is built here and copied into
# a FROM scratch image.
image: build
	DOCKER_BUILDKIT=0 docker build --target prebuilt -t blobswarm:dev .

clean:
	rm -rf $(BIN)
