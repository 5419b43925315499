# Helm chart (charts/molecule-operator): lint, template, required values, shard collisions, and a
# server-side dry run against the test world. docs/testing.md, "Chart".
.PHONY: helm chart-test
helm: ## Build helm v3.22.0 from Go modules into ~/.cache/molecule-testenv/helm-v3.22.0
	tests/chart/install-helm.sh >/dev/null

chart-test: tools ## Chart: lint --strict, template, required values, two releases, dry-run=server
	$(CARGO) build --workspace --bins
	tests/chart/run.sh

EXTRA_TESTS += chart-test
