# Benchmarks (issue #8): not tests, never part of `make test`. Included by the Makefile.

# dag-factory is benchmarked next to Airflow when it installs; it goes into a private target
# folder, never into .venv or the lock files.
DAGFACTORY_VERSION ?= 1.1.0
BENCH_DEPS := .cache/bench-deps/dag-factory
BENCH_QUICK ?= 0
BENCH_ARGS ?=

##@ Benchmarks

$(BENCH_DEPS)/dagfactory/__init__.py: | $(UV)
	$(UV) pip install -q --no-deps --target $(BENCH_DEPS) "dag-factory==$(DAGFACTORY_VERSION)" \
	  || echo "dag-factory $(DAGFACTORY_VERSION) could not be installed: benchmarking without it"

.PHONY: bench
bench: venv $(BENCH_DEPS)/dagfactory/__init__.py ## Benchmarks of issue #8 (~15 min, refreshes docs/benchmarks.md; BENCH_QUICK=1: ~2 min smoke)
	$(BIN)/python -m bench $(if $(filter-out 0,$(BENCH_QUICK)),--quick,--update-docs) $(BENCH_ARGS)
