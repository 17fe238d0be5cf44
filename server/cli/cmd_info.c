/* cmd_info.c: `mkdseg info F.nii.gz [--json]`: what the volume reader sees in a file.
 * Exit 0 on success, 1 when the file cannot be read (the reason on stderr), 2 on usage errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "vol.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mkdseg info FILE.nii[.gz] [--json] [--max-voxels N]\n"
               "  Reads FILE with the same checks as uploads and training and prints its dims,\n"
               "  datatype, spacing, the affine in use and its source (sform, qform, pixdim),\n"
               "  orientation code, slicing axis and intensity range.\n"
               "  --json          one JSON object on stdout\n"
               "  --max-voxels N  voxel limit (default %lld)\n",
            (long long)VOL_DEFAULT_MAX_VOXELS);
}

static const char *format_name(const vol_header *h)
{
    switch (h->nifti_type) {
    case 0: return "ANALYZE-7.5";
    case 1: return "NIfTI-1";
    case 2: return "NIfTI-1 (hdr/img)";
    case 4: return "NIfTI-2";
    case 5: return "NIfTI-2 (hdr/img)";
    default: return "unknown";
    }
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    vol_read_opts opts = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--max-voxels") && i + 1 < argc) {
            char *end;
            opts.max_voxels = strtoll(argv[++i], &end, 10);
            if (*end || opts.max_voxels <= 0) {
                fprintf(stderr, "mkdseg info: --max-voxels needs a positive integer\n");
                return 2;
            }
        } else if (argv[i][0] == '-' || path) {
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    vol_t v;
    if (vol_read(path, &opts, &v, err, sizeof err) != 0) {
        fprintf(stderr, "mkdseg info: %s\n", err);
        return 1;
    }
    const vol_geom *g = &v.geom;
    double sp[3];
    char orient[4];
    vol_geom_spacing(g, sp);
    vol_geom_orientation(g, orient);
    int sax = vol_geom_slicing_axis(g);
    int64_t n[3] = {g->nx, g->ny, g->nz};
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "file", json_string(path));
        json_object_set_new(o, "format", json_string(format_name(&v.hdr)));
        json_object_set_new(o, "compressed", json_boolean(v.hdr.compressed));
        json_object_set_new(o, "dims", json_pack("[III]", (json_int_t)g->nx, (json_int_t)g->ny, (json_int_t)g->nz));
        json_object_set_new(o, "datatype", json_string(vol_datatype_name(v.hdr.datatype)));
        json_object_set_new(o, "spacing", json_pack("[fff]", sp[0], sp[1], sp[2]));
        json_object_set_new(o, "pixdim", json_pack("[fff]", g->pixdim[1], g->pixdim[2], g->pixdim[3]));
        json_t *a = json_array();
        for (int r = 0; r < 4; r++)
            json_array_append_new(a, json_pack("[ffff]", g->affine[r][0], g->affine[r][1],
                                               g->affine[r][2], g->affine[r][3]));
        json_object_set_new(o, "affine", a);
        json_object_set_new(o, "affine_source", json_string(vol_affine_src_name(g->affine_src)));
        json_object_set_new(o, "qform_code", json_integer(g->qform_code));
        json_object_set_new(o, "sform_code", json_integer(g->sform_code));
        json_object_set_new(o, "orientation", json_string(orient));
        json_object_set_new(o, "slicing_axis", json_integer(sax));
        json_object_set_new(o, "slices", json_integer((json_int_t)n[sax]));
        json_object_set_new(o, "scl_slope", json_real(v.hdr.scl_slope));
        json_object_set_new(o, "scl_inter", json_real(v.hdr.scl_inter));
        json_object_set_new(o, "min", json_real(v.vmin));
        json_object_set_new(o, "max", json_real(v.vmax));
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        printf("file:          %s\n", path);
        printf("format:        %s%s%s\n", format_name(&v.hdr), v.hdr.compressed ? ", gzip" : "",
               v.hdr.byteswapped ? ", byte-swapped" : "");
        printf("dims:          %lld x %lld x %lld\n", (long long)g->nx, (long long)g->ny, (long long)g->nz);
        printf("datatype:      %s", vol_datatype_name(v.hdr.datatype));
        if (v.hdr.scl_slope != 0 && !(v.hdr.scl_slope == 1 && v.hdr.scl_inter == 0))
            printf(" (scl_slope %g, scl_inter %g)", v.hdr.scl_slope, v.hdr.scl_inter);
        printf("\nspacing:       %.6g x %.6g x %.6g\n", sp[0], sp[1], sp[2]);
        printf("affine:        from %s (qform_code %d, sform_code %d)\n",
               vol_affine_src_name(g->affine_src), g->qform_code, g->sform_code);
        for (int r = 0; r < 4; r++)
            printf("               [%12.6f %12.6f %12.6f %12.6f]\n", g->affine[r][0],
                   g->affine[r][1], g->affine[r][2], g->affine[r][3]);
        printf("orientation:   %s\n", orient);
        printf("slicing axis:  %d (%c), %lld slices\n", sax, "ijk"[sax], (long long)n[sax]);
        printf("intensity:     %g .. %g\n", (double)v.vmin, (double)v.vmax);
    }
    vol_free(&v);
    return 0;
}
