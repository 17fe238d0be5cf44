/* fuzz_nifti.c: libFuzzer target for the NIfTI reader (engine/io/nifti_read.c).
 * Each input is written to a file (.nii.gz when it starts with the gzip magic, else .nii) and
 * read with vol_read under a 2^22-voxel limit; any crash, sanitizer report or leak is a finding.
 * Built and run by `make fuzz` (mk/vol.mk) with clang -fsanitize=fuzzer,address,undefined. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vol.h"

static char path_nii[256], path_gz[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path_nii[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path_nii, sizeof path_nii, "%s/mkdseg-fuzz-%d.nii", dir ? dir : "/tmp",
                 (int)getpid());
        snprintf(path_gz, sizeof path_gz, "%s.gz", path_nii);
    }
    const char *path = size >= 2 && data[0] == 0x1f && data[1] == 0x8b ? path_gz : path_nii;
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    vol_read_opts o = {.max_voxels = INT64_C(1) << 22};
    vol_t v;
    char err[512];
    if (vol_read(path, &o, &v, err, sizeof err) == 0) {
        /* exercise what callers do next with a volume that passed */
        char code[4];
        vol_geom_orientation(&v.geom, code);
        vol_slice_frame fr;
        vol_geom_slice_frame(&v.geom, &fr);
        if (v.geom.nx * v.geom.ny * v.geom.nz != fr.w * fr.h * fr.nslices)
            abort();
        vol_free(&v);
    } else if (!err[0]) {
        abort(); /* every failure must say why */
    }
    unlink(path);
    return 0;
}
