/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (uploaded model files,
 * POST /models, go through st_parse). Any input must give a model or a clear error, never a
 * crash, a leak or a read outside the buffer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file *f = NULL;
    char err[256];
    if (st_parse(data, size, &f, err, sizeof err) == 0) {
        /* touch everything the reader handed out */
        volatile uint8_t sink = 0;
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *t = st_at(f, i);
            if (t->nbytes)
                sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
            if (st_get(f, t->name) == NULL)
                __builtin_trap();
        }
        for (int i = 0; i < st_meta_count(f); i++) {
            const char *k, *v;
            st_meta_at(f, i, &k, &v);
            sink ^= (uint8_t)strlen(k) ^ (uint8_t)strlen(v);
        }
        (void)sink;
        st_close(f);
    } else if (!err[0]) {
        __builtin_trap(); /* every refusal names its reason */
    }
    return 0;
}
