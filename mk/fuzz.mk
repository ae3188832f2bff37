# Property-based fuzzing of the sync (issues #13, #27). `make test` runs the same suite bounded:
# DAGFLEET_FUZZ_EXAMPLES=200 derandomized examples (the same ones every run, ~40 s). This target
# runs many more random ones; FUZZ_RUNS repeats it (each run draws new examples).
FUZZ_EXAMPLES ?= 1000
FUZZ_RUNS ?= 1

##@ Fuzzing

.PHONY: fuzz
fuzz: venv ## Fuzz `dagfleet sync` with hostile config API answers (FUZZ_EXAMPLES=1000 random, FUZZ_RUNS=1)
	for run in $$(seq $(FUZZ_RUNS)); do \
	  echo "fuzz run $$run of $(FUZZ_RUNS)"; \
	  DAGFLEET_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) DAGFLEET_FUZZ_DERANDOMIZE=false \
	    $(BIN)/pytest tests/fuzz -q -p no:cacheprovider $(PYTEST_ARGS) || exit 1; \
	done
