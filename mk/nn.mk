# mk/nn.mk: the engine core's targets.
#   make golden-ops   regenerate tests/golden/ops/*.bin (PyTorch references of every op,
#                     written by tests/golden/gen_ops.py with Debian's /usr/bin/python3)
#   make valgrind     memcheck on two mkd training iterations and a segmentation
#                     (scripts/valgrind-train.sh; fails on a memory error or a leak)
# `make golden` depends on golden-ops (and on the models' golden-models, mk/bench.mk).
.PHONY: golden-ops valgrind
golden-ops:
	$(PY) tests/golden/gen_ops.py tests/golden/ops

golden: golden-ops

valgrind: $(MKDSEG)
	scripts/valgrind-train.sh $(MKDSEG)
