# The kubectl plugin (crates/plugin, docs/plugin.md). `make install-plugin` builds kubectl-molecule
# and installs it, with the `kubectl_complete-molecule` helper that kubectl >= 1.26 runs to
# complete plugin commands, into PLUGIN_DIR (default ~/.local/bin; it must be on PATH).
# PLUGIN_PROFILE=release builds an optimized binary (slower to build).
PLUGIN_DIR ?= $(HOME)/.local/bin
PLUGIN_PROFILE ?= dev
PLUGIN_TARGET_DIR := $(if $(filter dev,$(PLUGIN_PROFILE)),debug,$(PLUGIN_PROFILE))
# What cargo builds: the plugin alone by default; plugin-test builds what `make build` builds (the
# same feature set, so nothing is compiled twice after `make e2e`).
PLUGIN_CARGO_ARGS ?= -p molecule-plugin --bin kubectl-molecule

.PHONY: install-plugin
install-plugin: ## Build kubectl-molecule and install it (and its completion helper) into PLUGIN_DIR
	$(CARGO) build $(PLUGIN_CARGO_ARGS) --profile $(PLUGIN_PROFILE)
	install -d "$(PLUGIN_DIR)"
	install -m 0755 target/$(PLUGIN_TARGET_DIR)/kubectl-molecule "$(PLUGIN_DIR)/kubectl-molecule"
	install -m 0755 crates/plugin/kubectl_complete-molecule "$(PLUGIN_DIR)/kubectl_complete-molecule"
	@case ":$$PATH:" in *":$(PLUGIN_DIR):"*) echo "installed: kubectl molecule --help";; \
	  *) echo "installed into $(PLUGIN_DIR), which is not on PATH: export PATH=\"$(PLUGIN_DIR):\$$PATH\"";; esac

# plugin-test uses the test world's kubectl (built by `make tools`), else the one on PATH.
.PHONY: plugin-test
plugin-test: ## Install the plugin into a scratch dir; kubectl finds it, runs it and completes it
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	  $(MAKE) --no-print-directory install-plugin PLUGIN_DIR="$$dir" PLUGIN_CARGO_ARGS="--workspace --bins" >/dev/null && \
	  source $(TESTENV)/lib.sh && export PATH="$$dir:$$K8S_BIN:$$PATH" && \
	  command -v kubectl >/dev/null || { echo "plugin-test needs kubectl: make tools"; exit 1; } && \
	  kubectl plugin list 2>/dev/null | grep -q "$$dir/kubectl-molecule" && \
	  kubectl molecule --help | grep -q "display" && \
	  [ "$$(kubectl_complete-molecule __complete display t)" = "$$(printf 'take\n:4')" ] && \
	  kubectl molecule completion bash | grep -q "complete -F _kubectl__molecule .* kubectl-molecule" && \
	  kubectl molecule completion zsh | grep -q "#compdef kubectl-molecule" && \
	  echo "plugin-test: kubectl finds, runs and completes kubectl-molecule"

EXTRA_TESTS += plugin-test
