# mk/vol.mk: targets of the volumes module (engine/io, prep, metrics, phantom).
# nifticlib's headers include "znzlib.h" unqualified: engine/io needs /usr/include/nifti.
$(BUILD)/obj/engine/io/%.o: CFLAGS += -I/usr/include/nifti

# `make phantom-data`: the fixed phantom benchmark (docs/phantom.md), MM-WHS-style names:
#   var/phantom/mr/mr_train_10NN_{image,label}.nii.gz      20 MR, seeds 1001..1020
#   var/phantom/ct/ct_train_20NN_{image,label}.nii.gz      20 CT, seeds 2001..2020
#   var/phantom/ct_test/ct_test_30NN_{image,label}.nii.gz  10 CT, seeds 3001..3010
# Default sizes: CT 96x96x80 (about 2.3 x 2.3 x 2 mm), MR 80x80x40 (about 3.75 x 3.75 x 4 mm).
PHANTOM_DIR ?= var/phantom
phantom-data: $(MKDSEG)
	@mkdir -p $(PHANTOM_DIR)/mr $(PHANTOM_DIR)/ct $(PHANTOM_DIR)/ct_test
	@set -e; for i in $$(seq 1 20); do n=$$(printf %02d $$i); \
	  $(MKDSEG) phantom --modality mr --seed $$((1000+i)) --image $(PHANTOM_DIR)/mr/mr_train_10$${n}_image.nii.gz --label $(PHANTOM_DIR)/mr/mr_train_10$${n}_label.nii.gz; \
	  $(MKDSEG) phantom --modality ct --seed $$((2000+i)) --image $(PHANTOM_DIR)/ct/ct_train_20$${n}_image.nii.gz --label $(PHANTOM_DIR)/ct/ct_train_20$${n}_label.nii.gz; \
	done; for i in $$(seq 1 10); do n=$$(printf %02d $$i); \
	  $(MKDSEG) phantom --modality ct --seed $$((3000+i)) --image $(PHANTOM_DIR)/ct_test/ct_test_30$${n}_image.nii.gz --label $(PHANTOM_DIR)/ct_test/ct_test_30$${n}_label.nii.gz; \
	done
	@echo "phantom-data: 20 MR + 20 CT training and 10 CT test volumes under $(PHANTOM_DIR)/"

# `make fuzz` (NIfTI reader part): libFuzzer with clang 14 (packages clang, libclang-rt-14-dev),
# seeded with tests/data/ edge cases, two small phantom volumes and nibabel's test files.
# FUZZ_RUNS executions (default 200000); summary in build/fuzz/summary.txt.
FUZZ_CC   ?= clang-14
FUZZ_RUNS ?= 200000
FUZZ_DIR  := build/fuzz
FUZZ_SRC  := tests/fuzz/fuzz_nifti.c engine/io/nifti_read.c engine/io/nifti_write.c engine/io/geom.c engine/io/labels.c engine/common/mkd_env.c engine/common/mkd_err.c engine/io/nrrd_write.c
.PHONY: fuzz-nifti
fuzz: fuzz-nifti
$(FUZZ_DIR)/fuzz_nifti: $(FUZZ_SRC) engine/include/vol.h
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Iengine/include -I/usr/include/nifti -o $@ $(FUZZ_SRC) -lnifti2 -lznz -lz -ldeflate -lm -lpthread
fuzz-nifti: $(FUZZ_DIR)/fuzz_nifti $(MKDSEG)
	@rm -rf $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts && mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds $(FUZZ_DIR)/artifacts
	@cp tests/data/*.nii* $(FUZZ_DIR)/seeds/
	@for f in standard.nii.gz anatomical.nii example4d.nii.gz example_nifti2.nii.gz; do \
	  cp /usr/lib/python3/dist-packages/nibabel/tests/data/$$f $(FUZZ_DIR)/seeds/ 2>/dev/null || true; done
	@$(MKDSEG) phantom --modality ct --seed 1 --shape 12,12,6 --image $(FUZZ_DIR)/seeds/ph_ct.nii.gz --label $(FUZZ_DIR)/seeds/ph_ct_label.nii.gz 2>/dev/null
	@$(MKDSEG) phantom --modality mr --seed 1 --shape 10,10,4 --image $(FUZZ_DIR)/seeds/ph_mr.nii --label $(FUZZ_DIR)/seeds/ph_mr_label.nii 2>/dev/null
	@cd $(FUZZ_DIR) && ./fuzz_nifti -runs=$(FUZZ_RUNS) -max_len=131072 -rss_limit_mb=2048 -timeout=10 \
	  -artifact_prefix=artifacts/ -print_final_stats=1 corpus seeds > fuzz.log 2>&1; rc=$$?; \
	  runs=$$(grep -o 'Done [0-9]* runs in [0-9]* second' fuzz.log | tail -1); \
	  n=$$(ls artifacts | wc -l); \
	  { echo "fuzz_nifti: $${runs:-did not finish} (requested $(FUZZ_RUNS)); exit status $$rc;"; \
	    echo "corpus: $$(ls corpus | wc -l) inputs; findings: $$n (build/fuzz/artifacts/)"; } | tee summary.txt; \
	  test $$rc -eq 0 -a $$n -eq 0
