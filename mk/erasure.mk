# Erasure at scale (issue 16): the lagging-instance erasure scenario in a test world of its own
# whose EC2 listings lag 10 s (the AWS model), so the model never reaches the shared world.
# world.sh brings that world up, installs the CRDs, and stops it on exit if it started it.
# docs/testing.md, "Erasure at scale".
ERASE_WORLD := $(CURDIR)/tests/e2e/.testenv-erase

.PHONY: e2e-erasure-lag
e2e-erasure-lag: tools ## Erasure under 10 s listing lag (an instance launched just before the delete) in a world of its own
	$(CARGO) build -p molecule-operator -p molecule-e2e --bins
	export TESTENV_STATE_DIR=$(ERASE_WORLD) AWS_MODEL='{"clientToken":true,"listingLagMs":10000}' && \
	  source tests/e2e/testenv/world.sh && $(CARGO) test -p molecule-e2e --test erasure_lag

WORLD_TESTS += e2e-erasure-lag
