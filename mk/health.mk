# Health for GitOps: the Argo CD Lua checks in charts/molecule-operator/files/health, run under
# gopher-lua as Argo CD runs them, and kstatus (Flux), against the fixtures in tests/health/fixtures
# (hand-written and captured from the e2e scenarios by tests/e2e/tests/health.rs). Go modules are
# downloaded into Go's own caches (GOMODCACHE, GOCACHE) on first use.
HEALTH_DIR := tests/health

.PHONY: health-test
health-test: ## Argo CD Lua health checks and kstatus against every fixture (Go, gopher-lua)
	@command -v go >/dev/null || { echo "health-test needs Go (the test world's tools are built with it)"; exit 1; }
	cd $(HEALTH_DIR) && go vet ./... && go test -count=1 ./...
	cd $(HEALTH_DIR) && go run ./cmd/healthcheck -verify fixtures

EXTRA_TESTS += health-test

.PHONY: health-capture
health-capture: ## Recapture tests/health/fixtures/captured from the e2e scenarios (needs the test world)
	$(CARGO) build -p molecule-operator --bins
	HEALTH_CAPTURE=1 $(CARGO) test -p molecule-e2e --test health
	git status --short -- $(HEALTH_DIR)/fixtures/captured
