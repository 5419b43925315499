# Data volume and Recreate (issue 13): tests/e2e/tests/data_volume.rs in the shared test world
# (plain moto is enough; `make e2e` runs it too, with every other scenario). world.sh brings the
# world up if it is not. docs/testing.md, "Data volume and Recreate".
.PHONY: e2e-volumes
e2e-volumes: tools ## Five Recreates of a Workspace with a data volume: Ready only once the volume moved
	$(CARGO) build -p molecule-operator --bins
	source tests/e2e/testenv/world.sh && $(CARGO) test -p molecule-e2e --test data_volume
