# mk/cuda.mk: the CUDA backend's targets (kernels/*.cu are compiled by the Makefile when
# nvcc and cuDNN exist: HAVE_CUDA=1).
#   make build/tests/cuda      Criterion parity tests: every op on the GPU against the PyTorch
#                              golden files and the CPU backend, one mkd training iteration
#                              (engine-only binary: no server libraries, so it runs on the
#                              lent GPU machine with a few carried runtime libraries)
#   make build/tests/cuda-bench  the GPU benchmark driver (engine-only)
#   make cuda-test             runs build/tests/cuda when a GPU is present (scripts/cuda-test.sh)
#   make bench-cuda            GPU benchmark against PyTorch on the same GPU (tests/gpu/bench.py,
#                              build/gpu/bench.{json,md}); `make bench` runs it first
#                              when a GPU is present
#   make gpu-prepare           fills debs/ for the lent machine (tests/gpu/prepare.sh)
# Without nvcc/cuDNN these targets say so and do nothing.

CUDA_TEST_SRC := $(wildcard tests/cuda/test_*.c)
CUDA_TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(CUDA_TEST_SRC))
CUDA_BENCH_OBJ := $(BUILD)/obj/tests/cuda/cuda_bench.o
CUDA_GOLDEN_OBJ := $(BUILD)/obj/tests/lib/golden.o $(BUILD)/obj/tests/lib/ttrain.o

.PHONY: bench-cuda gpu-prepare

ifeq ($(HAVE_CUDA),1)
# nvcc's kernel-launch stubs use C++ function-local statics (__cxa_guard_*): the C link
# line needs libstdc++. Also build for A100 (sm_80) beside H100/H200 (sm_90).
CUDA_LIBS += -lstdc++
NVFLAGS   += -gencode arch=compute_80,code=sm_80

# Engine-only link: the engine archive, its libraries (jansson: train_config), CUDA,
# Criterion.
$(BUILD)/tests/cuda: $(CUDA_TEST_OBJ) $(CUDA_GOLDEN_OBJ) $(ENGINE_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(ENGINE_LIBS) -ljansson $(CUDA_LIBS) -lcriterion $(LDSAN)

$(BUILD)/tests/cuda-bench: $(CUDA_BENCH_OBJ) $(ENGINE_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(ENGINE_LIBS) -ljansson $(CUDA_LIBS) $(LDSAN)

# `make cuda-test` builds the parity tests (`make test` builds them in its parallel inner make,
# through TEST_BINS), so that scripts/cuda-test.sh finds them.
cuda-test: $(BUILD)/tests/cuda
TEST_BINS += $(BUILD)/tests/cuda

bench-cuda: $(BUILD)/tests/cuda-bench
	python3 tests/gpu/bench.py --bin $(BUILD)/tests/cuda-bench --out $(BUILD)/gpu $(if $(filter 1,$(BENCH_QUICK)),--quick)

# `make bench` runs the GPU part too when a GPU is present (before the CPU table).
bench: bench-gpu-auto
.PHONY: bench-gpu-auto
bench-gpu-auto:
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory bench-cuda; \
	else echo "bench: no NVIDIA GPU here; GPU benchmark skipped (see docs/cuda.md)"; fi
else
$(BUILD)/tests/cuda $(BUILD)/tests/cuda-bench:
	@echo "CUDA backend not built (needs $(NVCC) and $(CUDA_HOME)/include/cudnn.h): $@ skipped"

bench-cuda:
	@echo "bench-cuda: CUDA backend not built; nothing to run"
endif

gpu-prepare:
	@tests/gpu/prepare.sh $(BUILD)
