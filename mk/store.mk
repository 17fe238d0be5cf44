# mk/store.mk: `make fuzz` part for the safetensors reader (model uploads).
# Seeds: a real model file from the trainer, the committed default model, and hand-made edge
# cases written by tests/tools/safetensors_ref.py. FUZZ_RUNS executions (mk/vol.mk's default).
.PHONY: fuzz-safetensors
fuzz: fuzz-safetensors
$(FUZZ_DIR)/fuzz_safetensors: tests/fuzz/fuzz_safetensors.c engine/store/safetensors.c engine/include/safetensors.h
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Iengine/include -o $@ tests/fuzz/fuzz_safetensors.c engine/store/safetensors.c -ljansson
fuzz-safetensors: $(FUZZ_DIR)/fuzz_safetensors
	@rm -rf $(FUZZ_DIR)/st && mkdir -p $(FUZZ_DIR)/st/corpus $(FUZZ_DIR)/st/seeds $(FUZZ_DIR)/st/artifacts
	@$(PY) tests/tools/safetensors_ref.py write $(FUZZ_DIR)/st/seeds/ref.safetensors
	@head -c 4096 models/default.safetensors > $(FUZZ_DIR)/st/seeds/default_head.safetensors 2>/dev/null || true
	@printf '\x0d\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    ' > $(FUZZ_DIR)/st/seeds/one.safetensors
	@cd $(FUZZ_DIR)/st && ../fuzz_safetensors -runs=$(FUZZ_RUNS) -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	  -artifact_prefix=artifacts/ -print_final_stats=1 corpus seeds > fuzz.log 2>&1; rc=$$?; \
	  runs=$$(grep -o 'Done [0-9]* runs in [0-9]* second' fuzz.log | tail -1); \
	  n=$$(ls artifacts | wc -l); \
	  { echo "fuzz_safetensors: $${runs:-did not finish} (requested $(FUZZ_RUNS)); exit status $$rc;"; \
	    echo "corpus: $$(ls corpus | wc -l) inputs; findings: $$n (build/fuzz/st/artifacts/)"; } | tee summary.txt; \
	  test $$rc -eq 0 -a $$n -eq 0
