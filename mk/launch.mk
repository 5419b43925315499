# Launch protocol against the AWS model (issue 13): tests/e2e/tests/launch_model.rs in a test world
# of its own with AWS_MODEL=realistic (ClientToken, listing lag, purge), since each of its tests
# switches the model (up to 60 s of listing lag) and that must never reach the shared world
# (tests/e2e/run.sh leaves it out). crash.rs runs in the shared world, whose model is realistic.
# world.sh brings that world up, installs the CRDs, and stops it on exit if it started it.
# docs/testing.md, "The launch protocol against the AWS model".
LAUNCH_WORLD := $(CURDIR)/tests/e2e/.testenv-launch

.PHONY: e2e-launch
e2e-launch: tools ## Launch scenarios (token reuse, purge, listing lag) in a world of their own, AWS model on
	$(CARGO) build -p molecule-operator -p molecule-e2e --bins
	export TESTENV_STATE_DIR=$(LAUNCH_WORLD) AWS_MODEL=realistic && source tests/e2e/testenv/world.sh && \
	  $(CARGO) test -p molecule-e2e --test launch_model

WORLD_TESTS += e2e-launch
