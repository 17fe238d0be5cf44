/* fuzz_dicom.c: libFuzzer target for the DICOM input reader: the bytes are a zip archive or
 * one DICOM file (dicom_read_buffer), read with pixels and a small voxel limit. Any input
 * must end in success or a refusal with a code, never a crash, a leak or a hang. */
#include <stddef.h>
#include <stdint.h>

#include "dicom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vol_read_opts o = {.max_voxels = 1 << 20};
    vol_t v;
    dicom_meta m;
    dicom_code code;
    char err[512];
    if (dicom_read_buffer(data, size, &o, 1, &v, &m, &code, err, sizeof err) == 0) {
        dicom_meta_free(&m);
        vol_free(&v);
    }
    return 0;
}
