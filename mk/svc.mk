# mk/svc.mk: build rules of the service layer (segmentation, models, jobs, volumes, Dice).
#
# Error messages of these files are built with snprintf into fixed buffers and may be cut
# short on purpose (a path in a message); gcc's -Wformat-truncation would flag each one.
SVC_SRC := server/store/svc.c server/http/upload.c server/jobs/engine_pool.c $(wildcard server/api/handlers_*.c) \
           server/jobs/job_train.c server/cli/cmd_dice_check.c server/cli/cmd_token.c tests/http/test_http_svc.c
$(patsubst %.c,$(BUILD)/obj/%.o,$(SVC_SRC)): CFLAGS += -Wno-format-truncation

# `make default-model`: the small model /segment serves out of the box (models/default.safetensors,
# committed). Trains `mkd-no-iam` (two segmentors, one on CT and one on raw MR, teaching each other:
# the method that led on the validation volumes of experiments/cpu.json, docs/method.md) on 4
# labelled phantom CT + 4 phantom MR volumes (seeds 2001-2004 and 1001-1004,
# the default 96x96x80 / 80x80x40 shapes), then evaluates it on 3 held-out phantom CT volumes
# (seeds 3001-3003). docs/service.md gives the numbers measured.
DM_DIR   ?= var/default-model
DM_ITERS ?= 3000
DM_ARGS  ?= --method mkd-no-iam --iters $(DM_ITERS) --iters-per-epoch 200 --size 64 --spacing 3 \
            --seg-width 8 --ngf 8 --ngen-blocks 2 --ndf 8 --batch 4 --lr-seg 3e-3 --aug-flip 0 \
            --seed 1 --threads 1
.PHONY: default-model
default-model: $(MKDSEG)
	@mkdir -p $(DM_DIR)/ct $(DM_DIR)/mr $(DM_DIR)/test models
	@set -e; for i in 1 2 3 4; do \
	  $(MKDSEG) phantom --modality ct --seed $$((2000+i)) --image $(DM_DIR)/ct/ct$${i}_image.nii.gz --label $(DM_DIR)/ct/ct$${i}_label.nii.gz; \
	  $(MKDSEG) phantom --modality mr --seed $$((1000+i)) --image $(DM_DIR)/mr/mr$${i}_image.nii.gz --label $(DM_DIR)/mr/mr$${i}_label.nii.gz; done; \
	for i in 1 2 3; do \
	  $(MKDSEG) phantom --modality ct --seed $$((3000+i)) --image $(DM_DIR)/test/t$${i}_image.nii.gz --label $(DM_DIR)/test/t$${i}_label.nii.gz; done
	time $(MKDSEG) train --target-dir $(DM_DIR)/ct --assistant-dir $(DM_DIR)/mr --out models/default.safetensors \
	  --checkpoint $(DM_DIR)/train.ckpt --json $(DM_ARGS)
	$(MKDSEG) eval --model models/default.safetensors --dir $(DM_DIR)/test
	@ls -l models/default.safetensors
