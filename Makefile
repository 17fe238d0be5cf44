# mkdseg build. `make` builds build/mkdseg; see `make help`.
# Source lists are wildcards: a new engine/**/*.c, server/<room>/*.c or tests/unit/*.c file is
# built without editing this file. Module-specific targets live in mk/*.mk.

SHELL      := /bin/bash
BUILD      ?= build
CC         ?= gcc
PY         := /usr/bin/python3
CUDA_HOME  ?= /usr/local/cuda
NVCC       ?= $(CUDA_HOME)/bin/nvcc
SANITIZE   ?= 0
OPT        ?= -O2
VERSION    := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

# server/ is one folder per layer (docs/architecture.md); headers are found by bare name, and
# scripts/check-layers.sh keeps includes pointing down the layers
SERVER_ROOMS := core store http jobs api cli
SERVER_INC   := $(addprefix -Iserver/,$(SERVER_ROOMS))

PKGS       := libmicrohttpd jansson libpq libcurl
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) -march=x86-64-v3 -fopenmp \
              -Iengine/include $(SERVER_INC) -I$(BUILD)/gen
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ENGINE_LIBS = -ldnnl -lnifti2 -lznz -lz -ldeflate -lm -lpthread -fopenmp
ifeq ($(SANITIZE),1)
  CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDSAN        = -fsanitize=address,undefined
  override BUILD := $(BUILD)/san
endif
CFLAGS  = $(CFLAGS_BASE) $(PKG_CFLAGS) $(EXTRA_CFLAGS)

# ---- CUDA detection: the backend is built when nvcc and cuDNN are present ----------------
HAVE_CUDA := $(shell test -x $(NVCC) && test -f $(CUDA_HOME)/include/cudnn.h && ls kernels/*.cu >/dev/null 2>&1 && echo 1 || echo 0)
ifeq ($(HAVE_CUDA),1)
  CU_SRC    := $(wildcard kernels/*.cu)
  CU_OBJ    := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CU_SRC))
  CFLAGS    += -DMKD_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart
  NVFLAGS   ?= -O2 -std=c++17 -Iengine/include -Ikernels \
               -gencode arch=compute_90,code=sm_90 -Xcompiler -fPIC,-Wall
else
  CU_OBJ    :=
  CUDA_LIBS :=
endif

ENGINE_SRC := $(shell find engine -name '*.c' | sort)
SERVER_SRC := $(filter-out server/cli/main.c,$(foreach r,$(SERVER_ROOMS),$(wildcard server/$(r)/*.c)))
ENGINE_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(ENGINE_SRC))
SERVER_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(SERVER_SRC))
UNIT_SRC   := $(wildcard tests/unit/*.c)
HTTP_SRC   := $(wildcard tests/http/*.c)
TESTLIB_SRC:= $(wildcard tests/lib/*.c)
LIBS        = $(ENGINE_LIBS) $(PKG_LIBS) $(CUDA_LIBS) -lssl -lcrypto $(LDSAN)

MKDSEG     := $(BUILD)/mkdseg
ENGINE_A   := $(BUILD)/libmkdengine.a
SERVER_A   := $(BUILD)/libmkdserver.a

.PHONY: all help deps deps-test db-start db-stop db-status run test test-unit test-http \
        bench fuzz golden cuda-test clean phantom-data experiment load faults reliability
all: $(MKDSEG)
	@echo "mkdseg: built $(MKDSEG) (CUDA backend: $(if $(filter 1,$(HAVE_CUDA)),built with $(NVCC),not built: needs nvcc and cuDNN under $(CUDA_HOME) and kernels/*.cu))"

help:
	@echo "make            build build/mkdseg (CPU backend; CUDA backend when nvcc+cuDNN exist)"
	@echo "make run        install deps, start local PostgreSQL, migrate, serve on 127.0.0.1:8080"
	@echo "make test       install deps, start local PostgreSQL, run every test"
	@echo "make bench      benchmarks against PyTorch (build/bench.json)"
	@echo "make fuzz       fuzz the parsers: NIfTI, safetensors, multipart, JSON bodies, routing (docs/reliability.md)"
	@echo "make load       load runs against a real server: held uploads, idle keep-alive, trickles (minutes)"
	@echo "make faults     fault runs: PostgreSQL restart, SIGTERM mid-upload, a full data folder (minutes)"
	@echo "make reliability  load + faults + fuzz"
	@echo "make cuda-test  CUDA parity tests (needs a GPU; says so and exits 0 without one)"
	@echo "make experiment the paper's comparison on phantom data (docs/results.md; about 80 min a seed on 2 cores)"
	@echo "SANITIZE=1      ASan/UBSan build under build/san/"

# build/gen/version.h: MKDSEG_VERSION (git describe), rewritten only when it changes, so the
# objects that include it (and record the revision in model files) follow every commit
VERSION_H := $(BUILD)/gen/version.h
$(VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@echo '#define MKDSEG_VERSION "$(VERSION)"' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
FORCE:
.PHONY: FORCE

$(BUILD)/obj/%.o: %.c | $(VERSION_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# -MMD -MP as for C: a .cu object is rebuilt when a header it includes changes (nn.h's
# structs are shared with the kernels)
$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

$(ENGINE_A): $(ENGINE_OBJ) $(CU_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SERVER_A): $(SERVER_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(MKDSEG): $(BUILD)/obj/server/cli/main.o $(SERVER_A) $(ENGINE_A)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# ---- tests -------------------------------------------------------------------------------
TESTLIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRC))
$(BUILD)/tests/unit: $(patsubst %.c,$(BUILD)/obj/%.o,$(UNIT_SRC)) $(TESTLIB_OBJ) $(SERVER_A) $(ENGINE_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS) -lcriterion

$(BUILD)/tests/http: $(patsubst %.c,$(BUILD)/obj/%.o,$(HTTP_SRC)) $(TESTLIB_OBJ) $(SERVER_A) $(ENGINE_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS) -lcriterion

deps:
	@scripts/deps.sh

deps-test:
	@scripts/deps.sh --test

db-start:
	@scripts/pg.sh start
db-stop:
	@scripts/pg.sh stop
db-status:
	@scripts/pg.sh status

# `make run`: everything a fresh Debian 12 machine needs, then the service in the foreground.
NPROC := $(shell nproc 2>/dev/null || echo 2)
run: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@scripts/run.sh

# `make test`: the same set-up, then every test. Exit status is non-zero on any failure.
test: deps-test
	@$(MAKE) --no-print-directory -j$(NPROC) all $(BUILD)/tests/unit $(BUILD)/tests/http $(TEST_BINS)
	@scripts/test.sh $(BUILD)

cuda-test:
	@scripts/cuda-test.sh $(BUILD)

# `make experiment`: the paper's comparison on the phantom benchmark -> docs/results.{json,md}.
EXPERIMENT_CONFIG ?= experiments/cpu.json
experiment: all
	@$(PY) scripts/experiment.py $(EXPERIMENT_CONFIG) --bin $(MKDSEG)

clean:
	rm -rf build

# fuzzing (mk/vol.mk, mk/store.mk): libFuzzer with clang 14
FUZZ_CC   ?= clang-14
FUZZ_RUNS ?= 200000
FUZZ_DIR  := build/fuzz

-include mk/*.mk
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
