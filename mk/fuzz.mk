# mk/fuzz.mk: `make fuzz` parts for the service's request parsing (tests/fuzz/fuzz_http.c):
# fuzz-multipart, fuzz-json and fuzz-route, each run for FUZZ_TIME seconds (default 60) against
# a fresh PostgreSQL database (scripts/pg.sh fresh mkdseg_fuzz). The server objects are
# compiled again with clang-14 and -fsanitize=fuzzer-no-link,address,undefined under
# build/fuzz/obj; the engine is linked from the normal build (it has its own targets). Corpora
# start from tests/fuzz/corpus/<target>/ (kept in the tree, small); what a run adds stays under
# build/fuzz/<target>/corpus. Summary lines in build/fuzz/<target>/summary.txt.
FUZZ_TIME  ?= 60
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SRV_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wno-unused-command-line-argument \
  -Iengine/include $(SERVER_INC) -I$(BUILD)/gen $(PKG_CFLAGS) \
  $(filter -DMKD_HAVE_CUDA=1 -I$(CUDA_HOME)/include,$(CFLAGS)) $(FUZZ_SAN)
FUZZ_SRV_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(SERVER_SRC))
FUZZ_HTTP_TARGETS := multipart json route

$(FUZZ_DIR)/obj/%.o: %.c | $(VERSION_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SRV_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_multipart: FUZZ_MODE := m
$(FUZZ_DIR)/fuzz_json: FUZZ_MODE := j
$(FUZZ_DIR)/fuzz_route: FUZZ_MODE := r
$(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_HTTP_TARGETS)): tests/fuzz/fuzz_http.c $(FUZZ_SRV_OBJ) $(SQL_EMBED_O) $(ENGINE_A)
	$(FUZZ_CC) $(FUZZ_SRV_CFLAGS) -fsanitize=fuzzer -DFUZZ_HTTP_MODE="'$(FUZZ_MODE)'" -o $@ \
	  tests/fuzz/fuzz_http.c $(FUZZ_SRV_OBJ) $(SQL_EMBED_O) $(ENGINE_A) $(LIBS) -lstdc++

# one rule per target (pattern rules are not applied to phony targets)
define FUZZ_HTTP_RUN
.PHONY: fuzz-$(1)
fuzz: fuzz-$(1)
fuzz-$(1): $(FUZZ_DIR)/fuzz_$(1)
	@d=$(FUZZ_DIR)/$(1); rm -rf $$$$d && mkdir -p $$$$d/corpus $$$$d/artifacts; \
	url=$$$$(scripts/pg.sh fresh mkdseg_fuzz) || exit 1; \
	cd $$$$d && MKDSEG_FUZZ_DATABASE_URL="$$$$url" ../fuzz_$(1) -max_total_time=$(FUZZ_TIME) -max_len=65536 \
	  -rss_limit_mb=4096 -timeout=30 -artifact_prefix=artifacts/ -print_final_stats=1 \
	  corpus $(CURDIR)/tests/fuzz/corpus/$(1) > fuzz.log 2>&1; rc=$$$$?; \
	runs=$$$$(grep -o 'stat::number_of_executed_units: *[0-9]*' fuzz.log | grep -o '[0-9]*$$$$'); \
	n=$$$$(ls artifacts | wc -l); \
	{ echo "fuzz_$(1): $$$${runs:-?} executions in $(FUZZ_TIME) s; exit status $$$$rc;"; \
	  echo "corpus: $$$$(ls corpus | wc -l) new inputs; findings: $$$$n ($$$$d/artifacts/)"; } | tee summary.txt; \
	test $$$$rc -eq 0 -a $$$$n -eq 0
endef
$(foreach t,$(FUZZ_HTTP_TARGETS),$(eval $(call FUZZ_HTTP_RUN,$(t))))
