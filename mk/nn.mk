# mk/nn.mk: the engine core's targets.
#   make golden-ops   regenerate tests/golden/ops/*.bin (PyTorch references of every op,
#                     written by tests/golden/gen_ops.py with Debian's /usr/bin/python3)
# `make golden` depends on golden-ops (and on the models' golden-models, mk/bench.mk).
.PHONY: golden-ops
golden-ops:
	$(PY) tests/golden/gen_ops.py tests/golden/ops

golden: golden-ops
