# mk/bench.mk: `make bench` (mkdseg against the tuned PyTorch peer) and
# `make golden-models` (the PyTorch reference data of the three networks).
#   make bench                 every workload at 1 and 2 threads, warm-up 2, median of 5
#   make bench BENCH_QUICK=1   warm-up 1, median of 3 (the machine is shared)
#   BENCH_ARGS="--workloads seg16_train_128 --threads 1 --peak-gflops 116.8" for a subset
#   the rows mkd_iter_64 (one experiment-scale mkd iteration, tests/bench/mkd_bench.py) and
#   ct512_segment (a 512x512x300 CT through mkdseg segment, tests/bench/ct_bench.py; makes its
#   phantom under build/bench_ct/ once) run whole mkdseg processes against PyTorch peers
#   ct512_segment_paper: the same CT through a paper-size two-member ensemble (width 32, 256-px
#   tiles at 1.4 mm; its model made once under build/bench_ct/); tests/bench/share_bench.py:
#   OpenMP waiting with two segmentations and a training job side by side (docs/service.md)
# Writes build/bench.json; docs/benchmarks.md says how to read it.

BENCH_QUICK ?= 0
BENCH_ARGS  ?=

.PHONY: bench golden-models
# one convolution's weight gradient, direct kernels against oneDNN (tests/bench/conv_rate.c)
$(BUILD)/conv_rate: tests/bench/conv_rate.c $(ENGINE_A)
	$(CC) $(CFLAGS) -o $@ $^ $(ENGINE_LIBS) $(CUDA_LIBS) $(LDSAN)

bench: $(MKDSEG)
	$(PY) tests/bench/run_bench.py --mkdseg $(MKDSEG) --out $(BUILD)/bench.json \
	    $(if $(filter 1,$(BENCH_QUICK)),--quick) $(BENCH_ARGS)

golden-models:
	$(PY) tests/golden/gen_models.py tests/golden/models

golden: golden-models
