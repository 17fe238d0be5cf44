# mk/reliability.mk: load and fault runs against a real server (scripts/reliability.py), kept
# out of `make test` because they take minutes. Figures go to build/reliability-<part>.json;
# docs/reliability.md holds the last run's. `make reliability` runs both and `make fuzz`.
REL_ARGS ?=
.PHONY: load faults reliability
load: all
	@$(PY) scripts/reliability.py load $(REL_ARGS) --out $(BUILD)/reliability-load.json
faults: all
	@$(PY) scripts/reliability.py faults $(REL_ARGS) --out $(BUILD)/reliability-faults.json
reliability: load faults fuzz
