# Property-based fuzzing of the sync (issue #13). `make test` runs a bounded number of examples of
# the same suite (tests/fuzz, DAGFLEET_FUZZ_EXAMPLES, default 20); this target runs many more.
FUZZ_EXAMPLES ?= 1000

##@ Fuzzing

.PHONY: fuzz
fuzz: venv ## Fuzz `dagfleet sync` with hostile config API answers (FUZZ_EXAMPLES=1000, ~3 min)
	DAGFLEET_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz -q -p no:cacheprovider $(PYTEST_ARGS)
