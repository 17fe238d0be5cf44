/* cmd_convert.c: `mkdseg convert IN OUT.nii[.gz]`: a volume as mkdseg reads it (a DICOM series
 * zip, folder or multi-frame file, or NIfTI) written as NIfTI: float32 intensities after
 * rescaling, the affine in RAS+ millimetres. The DICOM tests compare this against dcm2niix. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "dicom.h"

int cmd_convert(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: mkdseg convert IN OUT.nii[.gz]\n"
               "  IN: a DICOM series (.zip, a folder, one multi-frame file) or a NIfTI file.\n"
               "  Writes the volume as every mkdseg command reads it: float32 after\n"
               "  RescaleSlope/Intercept, slices ordered by position, affine in RAS+ mm.\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: mkdseg convert IN OUT.nii[.gz] (see --help)\n");
        return 2;
    }
    char err[768];
    vol_t v;
    if (vol_read_any(argv[1], NULL, &v, err, sizeof err) < 0) {
        fprintf(stderr, "mkdseg convert: %s: %s\n", argv[1], err);
        return 1;
    }
    int rc = vol_write(argv[2], &v.geom, v.data, VOL_DT_FLOAT32, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "mkdseg convert: %s\n", err);
    vol_free(&v);
    return rc < 0 ? 1 : 0;
}
