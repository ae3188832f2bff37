# Mutation testing of the core with mutmut (issue #27): scripts/mutation.py stages each module in
# .run/mutation/<module>/ (mutmut wants src/<package>), has mutmut write the mutants there and runs each against the module.s fast
# test subset plus a small derandomized fuzz, and prints the killed/survived counts per module.
# Results: .run/mutation/<module>.results.txt; the last figures and every survivor: docs/mutation.md.
MUTATION_MODULES ?= fleet.workflow_ids sync.plan fleet.store api.client fleet.config sync.apply

##@ Mutation testing

.PHONY: mutation
mutation: venv ## Mutation-test the core modules with mutmut, niced (MUTATION_MODULES=...)
	nice -n 19 $(BIN)/python scripts/mutation.py run $(MUTATION_MODULES)
	$(BIN)/python scripts/mutation.py summary
