# Benchmarks at scale (issue 16; docs/benchmarks.md). Not in EXTRA_TESTS: they measure, they do
# not assert, and they take many minutes on 2 cores. `make bench` keeps its default sizes.
#
# bench-1000: the Workspace benchmark at 1,000 through moto (the test world; world.sh brings it up
# if it is not). bench-fake: the operator at 10,000 Workspaces with the in-process fake cloud
# answering for AWS (`MOLECULE_FAKE_CLOUD=1`, a release build with the `fake` feature), against
# the real API server of the test world.
BENCH_FAKE_SIZES ?= 10000

.PHONY: bench-1000
bench-1000: tools ## Workspace benchmark at 1,000 through moto (docs/benchmarks.md)
	$(CARGO) build --workspace --bins
	ORPHAN_BENCH_N=0 tests/e2e/bench.sh 1000

.PHONY: bench-fake
bench-fake: tools ## Operator at 10,000 Workspaces on the in-process fake cloud (BENCH_FAKE_SIZES)
	$(CARGO) build --release -p molecule-operator --features fake
	$(CARGO) build -p molecule-e2e --bin bench
	source tests/e2e/testenv/world.sh && \
	  MOLECULE_OPERATOR_BIN=$(CURDIR)/target/release/molecule-operator target/debug/bench --fake-cloud $(BENCH_FAKE_SIZES)
