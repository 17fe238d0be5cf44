# mk/format.mk: `make format` rewrites the C sources in place with .clang-format (clang-format
# 14); `make format-check` only lists the files it would change. Neither runs in `make test`.
FORMAT_SRC = $(shell git ls-files 'engine/*.c' 'engine/*.h' 'server/*.c' 'server/*.h' \
                 'tests/*.c' 'tests/*.h')
.PHONY: format format-check
format:
	clang-format -i --style=file $(FORMAT_SRC)
format-check:
	@for f in $(FORMAT_SRC); do clang-format --style=file "$$f" | cmp -s "$$f" - || echo "$$f"; done
