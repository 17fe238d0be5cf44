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
