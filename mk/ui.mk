# The dashboard's browser libraries (server/api/ui/vendor, not committed): NiiVue and uPlot at the
# versions pinned in package.json / package-lock.json, installed by `npm ci` and copied under
# names that carry their versions (so they are served as immutable). A machine without npm (or
# without the npm registry) still builds the service: it warns and the dashboard lacks them.
UI_VENDOR     := server/api/ui/vendor
NIIVUE_VER    := 0.69.0
UPLOT_VER     := 1.6.32
UI_VENDOR_FILES := $(UI_VENDOR)/niivue-$(NIIVUE_VER).js $(UI_VENDOR)/uplot-$(UPLOT_VER).js \
                   $(UI_VENDOR)/uplot-$(UPLOT_VER).css $(UI_VENDOR)/LICENSES.txt

all: ui-vendor
.PHONY: ui-vendor
ui-vendor:
	@if [ -f $(UI_VENDOR)/LICENSES.txt ] && [ $(UI_VENDOR)/LICENSES.txt -nt package-lock.json ]; then exit 0; fi; \
	if ! command -v npm >/dev/null; then \
	  echo "mkdseg: npm is missing (scripts/deps.sh installs it): the dashboard has no viewer or charts" >&2; exit 0; fi; \
	if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2 || { \
	    echo "mkdseg: npm ci failed: the dashboard has no viewer or charts" >&2; exit 0; }; fi; \
	mkdir -p $(UI_VENDOR) && \
	sed '/^\/\/# sourceMappingURL=/d' node_modules/@niivue/niivue/dist/index.js > $(UI_VENDOR)/niivue-$(NIIVUE_VER).js && \
	cp node_modules/uplot/dist/uPlot.esm.js $(UI_VENDOR)/uplot-$(UPLOT_VER).js && \
	cp node_modules/uplot/dist/uPlot.min.css $(UI_VENDOR)/uplot-$(UPLOT_VER).css && \
	{ echo "niivue-$(NIIVUE_VER).js: @niivue/niivue $(NIIVUE_VER), dist/index.js, licence BSD-2-Clause (package.json)"; \
	  echo "uplot-$(UPLOT_VER).{js,css}: uplot $(UPLOT_VER), dist/uPlot.esm.js and uPlot.min.css, licence MIT:"; \
	  echo; cat node_modules/uplot/LICENSE; } > $(UI_VENDOR)/LICENSES.txt && \
	echo "mkdseg: dashboard libraries in $(UI_VENDOR) (NiiVue $(NIIVUE_VER), uPlot $(UPLOT_VER))"

# what the ensemble's disagreement map costs a segmentation (tests/bench/uncertainty_cost.c)
$(BUILD)/uncertainty_cost: tests/bench/uncertainty_cost.c $(ENGINE_A)
	$(CC) $(CFLAGS) -o $@ $^ $(ENGINE_LIBS) -ljansson $(CUDA_LIBS) $(LDSAN)
