# EC2 notifications (issue 16): the operator fed by EventBridge events on an SQS queue. The AWS
# model's events on their own (private moto, seconds), then the end-to-end steady state and
# out-of-band terminate (tests/e2e/tests/ec2_events.rs) in a test world of its own, since it
# switches the model's events on and counts every call through the fault proxy. world.sh brings
# that world up and stops it on exit if it started it. docs/testing.md, "EC2 notifications".
EVENTS_WORLD := $(CURDIR)/tests/e2e/.testenv-events

.PHONY: events-e2e
events-e2e: tools ## EC2 notifications: the AWS model's events, then <= 5 EC2 reads/min at rest and a terminate noticed in 60 s
	$(CARGO) build -p molecule-operator -p molecule-e2e --bins
	$(CARGO) test -p molecule-e2e --test aws_events
	export TESTENV_STATE_DIR=$(EVENTS_WORLD) && source tests/e2e/testenv/world.sh && \
	  target/debug/molecule-operator crds | kubectl apply --server-side --force-conflicts -f - >/dev/null && \
	  $(CARGO) test -p molecule-e2e --test ec2_events -- --nocapture

EXTRA_TESTS += events-e2e
