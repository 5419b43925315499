# Image: the operator's container image, built without a Docker engine (buildah, FROM scratch),
# and its checks. docs/image.md. `image-smoke` is not in EXTRA_TESTS: it needs the release build
# (~12 to 20 minutes cold), so CI calls it after `make test`.

.PHONY: image image-check image-smoke
# The Dockerfile/`make image` agreement check is cheap (about 1 s, no build): part of `make test`.
EXTRA_TESTS += image-check

image: ## Build the operator image into target/image/molecule-operator.oci.tar (release build, buildah)
	tests/image/build.sh

image-check: ## Check the Dockerfile and `make image` describe the same image (seconds, no build)
	tests/image/dockerfile-check.sh

image-smoke: image-check image tools ## Check the image, build the Dockerfile with stand-in bases, run the operator in it and the smoke scenario with its binary
	tests/image/dockerfile-build.sh
	$(CARGO) build --workspace --bins
	tests/image/smoke.sh
