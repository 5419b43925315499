# EC2 notifications (issue 16): the operator fed by EventBridge events on an SQS queue. The
# end-to-end steady state and out-of-band terminate (tests/e2e/tests/ec2_events.rs) in a test world
# of its own, since it switches the model's events on and counts every call through the fault
# proxy. world.sh brings that world up, installs the CRDs, and stops it on exit if it started it.
# The AWS model's events on their own (tests/e2e/tests/aws_events.rs, private moto, seconds) need
# no world of their own: `make e2e` runs them. docs/testing.md, "EC2 notifications".
EVENTS_WORLD := $(CURDIR)/tests/e2e/.testenv-events

.PHONY: events-e2e
events-e2e: tools ## EC2 notifications: <= 5 EC2 reads/min at rest and a terminate noticed in 60 s, in a world of its own
	$(CARGO) build -p molecule-operator -p molecule-e2e --bins
	export TESTENV_STATE_DIR=$(EVENTS_WORLD) && source tests/e2e/testenv/world.sh && \
	  $(CARGO) test -p molecule-e2e --test ec2_events -- --nocapture

WORLD_TESTS += events-e2e
