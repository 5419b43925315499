# molecule-operator. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
TESTENV := tests/e2e/testenv
CRD_DIR := charts/molecule-operator/crds
# Each area (chart, health checks, image, plugin) keeps its targets in mk/<area>.mk and adds the
# targets `make test` must run to EXTRA_TESTS. Scenarios in a test world of their own (another AWS
# model, every call counted) go in WORLD_TESTS instead: they run beside `make e2e` (e2e-worlds).
EXTRA_TESTS :=
WORLD_TESTS :=
include $(wildcard mk/*.mk)

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the operator, crdgen and the test-world binaries
	$(CARGO) build --workspace --bins

.PHONY: crds
crds: ## Regenerate the CRDs into charts/molecule-operator/crds
	$(CARGO) run -q -p molecule-crds --bin crdgen $(CRD_DIR)

.PHONY: verify
verify: crds ## Fail if generated files (CRDs) drift from the checked-in ones, or code is unformatted
	@git diff --exit-code -- $(CRD_DIR) || { echo "CRDs drifted: run 'make crds' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(CRD_DIR))" || { echo "untracked CRD files: run 'make crds' and commit"; exit 1; }
	$(CARGO) fmt --all -- --check

.PHONY: lint
lint: ## rustfmt and clippy (pedantic, warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p molecule-operator --all-targets --features fake -- -D warnings

.PHONY: unit
unit: ## Unit and property tests (no test world needed)
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test -p molecule-crds --test '*'

.PHONY: tools
tools: ## Build kube-apiserver, kubectl and etcd from Go modules, install moto (cached outside the clone)
	$(TESTENV)/build-tools.sh

.PHONY: testenv-up
testenv-up: tools ## Start etcd, kube-apiserver, moto, the fault proxy and the Cloudflare fake on loopback
	$(CARGO) build -p molecule-e2e --bins
	$(TESTENV)/up.sh

.PHONY: testenv-down
testenv-down: ## Stop exactly the processes testenv-up started
	$(TESTENV)/down.sh

.PHONY: e2e
e2e: tools ## End-to-end scenarios against the test world (starts and stops it if it is not up; AWS_MODEL=realistic unless set)
	$(CARGO) build --workspace --bins
	AWS_MODEL=$${AWS_MODEL:-realistic} tests/e2e/run.sh

# The scenarios wait on timers (listing lag, boot, deadlines) far more than they compute, and each
# world is its own set of processes on free ports, so `make e2e` and every WORLD_TESTS target run
# at once; each target's output is printed whole when it ends (--output-sync).
.PHONY: e2e-worlds
e2e-worlds: tools ## `make e2e` and the scenarios of WORLD_TESTS (each in a world of its own) at once
	$(MAKE) --no-print-directory --output-sync=target -j$(words e2e $(WORLD_TESTS)) e2e $(WORLD_TESTS)

.PHONY: test
test: unit e2e-worlds $(EXTRA_TESTS) ## Every test: unit, property, end-to-end, chart and health checks

.PHONY: bench
bench: tools ## Workspace benchmark (BENCH_SIZES="50 100"); results go to docs/benchmarks.md by hand
	$(CARGO) build --workspace --bins
	tests/e2e/bench.sh $(BENCH_SIZES)

.PHONY: run
run: tools ## Bring up the test world, install the CRDs, run the operator on the samples (Ctrl-C stops all)
	$(CARGO) build --workspace --bins
	tests/e2e/demo.sh

.PHONY: deny
deny: ## Advisories, bans and licenses with cargo-deny (install: cargo install cargo-deny)
	$(CARGO) deny check
