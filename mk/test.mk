# Every test target, in one place. Reads only the shared variables at the top of the Makefile (BIN,
# IMAGE, PYTEST_ARGS, HELM_ON_PATH); the chart tests find their scanners through the CHART_TEST_*
# variables mk/chart.mk exports, and `tools` (mk/chart.mk) installs them.

# Property-based fuzzing of the sync (issues #13, #27). `make test` runs the same suite bounded:
# DAGFLEET_FUZZ_EXAMPLES=200 derandomized examples (the same ones every run, ~40 s). This target
# runs many more random ones; FUZZ_RUNS repeats it (each run draws new examples: run N uses
# Hypothesis seed FUZZ_SEED+N, so a failing run is replayed with the seed it printed). Each run's
# seed, result and time: one line in .run/fuzz-runs.log.
FUZZ_EXAMPLES ?= 1000
FUZZ_RUNS ?= 1
FUZZ_SEED ?= $(shell date +%s)

# The chart harness: the rendered chart's pods under Docker, like a kubelet.
HARNESS_SERVICES_IMAGE ?= dagfleet-harness-services:bookworm
export HARNESS_SERVICES_IMAGE

# Mutation testing of the core with mutmut (issue #27): scripts/mutation.py stages each module in
# .run/mutation/<module>/ (mutmut wants src/<package>), has mutmut write the mutants there and runs
# each against the tests that run its function (one coverage run says which), and prints the
# killed/survived counts per module. MUTATION_MINUTES bounds each module's run (it resumes next time);
# MUTATION_TESTS=K runs only the K fastest of each mutant's tests (a survivor then says so).
# Results: .run/mutation/<module>.results.txt; the last figures and every survivor: docs/mutation.md.
MUTATION_MODULES ?= fleet.workflow_ids sync.plan fleet.store api.client fleet.config sync.apply
MUTATION_MINUTES ?= inf
MUTATION_TESTS ?=

##@ Testing

# The suite in two steps: the tests marked `helm` (all of tests/chart, which renders the chart even
# while collecting, and a few others) need the chart tools; the rest needs none. When PYTEST_ARGS
# narrows the run, a step may select no test: pytest's exit code 5 then passes.
PYTEST_NONE_OK = $(if $(strip $(PYTEST_ARGS)),|| [ $$? -eq 5 ])

.PHONY: test
test: lint test-unit chart-test ## Run lint and the whole test suite (test-unit, then chart-test)

.PHONY: test-unit
test-unit: venv ## Every test that needs no helm (all but tests/chart and the tests marked `helm`)
	$(BIN)/pytest --ignore=tests/chart -m "not helm" $(PYTEST_ARGS) $(PYTEST_NONE_OK)

.PHONY: chart-test
chart-test: venv tools ## Chart tests (tests/chart + every test marked `helm`): render, schema, lint, kubernetes-validate, checkov, entrypoint contract
	$(HELM_ON_PATH) $(BIN)/pytest -m helm $(PYTEST_ARGS) $(PYTEST_NONE_OK)

.PHONY: image-test
image-test: venv ## Build the image and run its smoke tests (tests/image)
	$(BIN)/pytest tests/image $(PYTEST_ARGS)

##@ Fuzzing

.PHONY: fuzz
fuzz: venv ## Fuzz `dagfleet sync` with hostile config API answers (FUZZ_EXAMPLES=1000 random, FUZZ_RUNS=1, FUZZ_SEED=now)
	mkdir -p .run
	for run in $$(seq $(FUZZ_RUNS)); do \
	  seed=$$(( $(FUZZ_SEED) + run )); started=$$(date +%s); result=pass; \
	  echo "fuzz run $$run of $(FUZZ_RUNS), seed $$seed"; \
	  DAGFLEET_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) DAGFLEET_FUZZ_DERANDOMIZE=false \
	    $(BIN)/pytest tests/fuzz -q -p no:cacheprovider --hypothesis-seed=$$seed $(PYTEST_ARGS) || result=fail; \
	  echo "$$(date -u +%FT%TZ) run $$run of $(FUZZ_RUNS) seed $$seed examples $(FUZZ_EXAMPLES): $$result in $$(( $$(date +%s) - started )) s" \
	    | tee -a .run/fuzz-runs.log; \
	  [ $$result = pass ] || exit 1; \
	done

##@ Chart harness

.PHONY: harness-images
harness-images: ## Build the harness's PostgreSQL/Redis image from Debian packages (root, dockerd)
	bash tests/harness/build_services.sh

.PHONY: harness
harness: venv tools harness-images ## Run the chart like a cluster: LocalExecutor, CeleryExecutor, KubernetesExecutor, PgBouncer, 2 shards (needs `make image`)
	$(HELM_ON_PATH) DAGFLEET_HARNESS=1 DAGFLEET_TEST_IMAGE=$(IMAGE) $(BIN)/pytest tests/harness -p no:cacheprovider $(PYTEST_ARGS)

##@ Mutation testing

.PHONY: mutation
mutation: venv ## Mutation-test the core modules with mutmut, niced (MUTATION_MODULES=..., MUTATION_MINUTES=per module)
	nice -n 19 $(BIN)/python scripts/mutation.py run --minutes $(MUTATION_MINUTES) \
	  $(if $(MUTATION_TESTS),--tests $(MUTATION_TESTS)) $(MUTATION_MODULES)
	$(BIN)/python scripts/mutation.py summary
