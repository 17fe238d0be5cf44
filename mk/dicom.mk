# mk/dicom.mk: DICOM series in and Segmentation objects out (engine/io/dicom_*, docs/dicom.md).
# The C++ units (DCMTK is a C++ library) are compiled here and join libmkdengine.a; they sit
# behind the C header engine/include/dicom.h. Zip archives are read with libarchive.
CXX        ?= g++
DICOM_CXX_SRC := $(sort $(wildcard engine/io/*.cpp))
DICOM_CXX_OBJ := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(DICOM_CXX_SRC))
DICOM_LIBS    := -ldcmseg -ldcmfg -ldcmiod -ldcmjpls -ldcmtkcharls -ldcmjpeg -lijg8 -lijg12 -lijg16 \
                 -ldcmimage -ldcmimgle -ldcmdata -loflog -lofstd -larchive -lstdc++
CXXFLAGS_DICOM = -std=c++17 -Wall -Wextra -Werror -g $(OPT) -march=x86-64-v3 -Iengine/include -Iengine/io \
                 $(if $(filter 1,$(SANITIZE)),$(DICOM_SAN))
DICOM_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer

$(BUILD)/obj/engine/io/%.o: engine/io/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_DICOM) -MMD -MP -c $< -o $@

$(ENGINE_A): $(DICOM_CXX_OBJ)
LIBS += $(DICOM_LIBS)

# `make fuzz` (DICOM part): libFuzzer over dicom_read_buffer (zip archives and DICOM files),
# seeded with pydicom series (tests/tools/dicom_series.py): a zip, one file, a multi-frame file.
# DCMTK allocates an element's declared length (up to 4 GiB) before it finds the data shorter and
# refuses the file: the malloc limit allows that, so that only real faults count as findings.
FUZZ_DICOM_SRC := tests/fuzz/fuzz_dicom.c engine/io/dicom_src.c $(DICOM_CXX_SRC) engine/io/nifti_read.c \
                  engine/io/nifti_write.c engine/io/geom.c engine/io/labels.c engine/common/mkd_env.c engine/common/mkd_err.c engine/io/nrrd_write.c
.PHONY: fuzz-dicom
fuzz: fuzz-dicom
$(FUZZ_DIR)/fuzz_dicom: $(FUZZ_DICOM_SRC) engine/include/dicom.h engine/io/dicom_series.hpp
	@mkdir -p $(FUZZ_DIR)/dcmobj
	@set -e; for f in $(filter %.c,$(FUZZ_DICOM_SRC)); do \
	  $(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer-no-link,address,undefined -Iengine/include \
	    -I/usr/include/nifti -c $$f -o $(FUZZ_DIR)/dcmobj/$$(basename $$f).o; done; \
	for f in $(DICOM_CXX_SRC); do \
	  clang++-14 -g -O1 -std=c++17 -fsanitize=fuzzer-no-link,address,undefined -Iengine/include -Iengine/io \
	    -c $$f -o $(FUZZ_DIR)/dcmobj/$$(basename $$f).o; done
	clang++-14 -fsanitize=fuzzer,address,undefined -o $@ $(FUZZ_DIR)/dcmobj/*.o $(DICOM_LIBS) -lnifti2 -lznz -lz -ldeflate -lm -lpthread
fuzz-dicom: $(FUZZ_DIR)/fuzz_dicom
	@rm -rf $(FUZZ_DIR)/dcm && mkdir -p $(FUZZ_DIR)/dcm/corpus $(FUZZ_DIR)/dcm/seeds $(FUZZ_DIR)/dcm/artifacts $(FUZZ_DIR)/dcm/one
	@$(PY) tests/tools/dicom_series.py $(FUZZ_DIR)/dcm/seeds/series.zip --shape 6,5,3 > /dev/null
	@$(PY) tests/tools/dicom_series.py $(FUZZ_DIR)/dcm/seeds/mf.zip --enhanced --shape 6,5,3 > /dev/null
	@$(PY) tests/tools/dicom_series.py $(FUZZ_DIR)/dcm/one --shape 6,5,3 > /dev/null && cp $$(ls $(FUZZ_DIR)/dcm/one/* | head -1) $(FUZZ_DIR)/dcm/seeds/one.dcm
	@cd $(FUZZ_DIR)/dcm && ../fuzz_dicom -runs=$(FUZZ_RUNS) -max_len=65536 -rss_limit_mb=4096 -malloc_limit_mb=4096 -timeout=10 \
	  -artifact_prefix=artifacts/ -print_final_stats=1 corpus seeds > fuzz.log 2>&1; rc=$$?; \
	  runs=$$(grep -o 'Done [0-9]* runs in [0-9]* second' fuzz.log | tail -1); \
	  n=$$(ls artifacts | wc -l); \
	  { echo "fuzz_dicom: $${runs:-did not finish} (requested $(FUZZ_RUNS)); exit status $$rc;"; \
	    echo "corpus: $$(ls corpus | wc -l) inputs; findings: $$n (build/fuzz/dcm/artifacts/)"; } | tee summary.txt; \
	  test $$rc -eq 0 -a $$n -eq 0

# the DICOMweb client builds messages and URLs into fixed buffers, cut short on purpose
$(BUILD)/obj/server/api/dicomweb.o: CFLAGS += -Wno-format-truncation
