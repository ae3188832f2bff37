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
bench: venv $(BENCH_DEPS)/dagfactory/__init__.py ## Benchmarks of issues #8 and #15 (over an hour: real dag-processor at 1,000 and 10,000 workflows; refreshes docs/benchmarks.md; BENCH_QUICK=1: ~8 min smoke; BENCH_ARGS="--only dagproc --dagproc-sizes 1000": ~30 min)
	$(BIN)/python -m bench $(if $(filter-out 0,$(BENCH_QUICK)),--quick,--update-docs) $(BENCH_ARGS)
