/* cmd_info.c: `mkdseg info F.nii.gz|SERIES.zip [--json]`: what the volume reader sees in a file.
 * Exit 0 on success, 1 when the file cannot be read (the reason on stderr), 2 on usage errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "dicom.h"
#include "vol.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkdseg info FILE.nii[.gz]|SERIES.zip|DICOMDIR/ [--json] [--max-voxels N]\n"
            "  A DICOM series (zip, folder, multi-frame file): series and study UIDs, modality,\n"
            "  dims, spacing, orientation, slice order, rescale, the RAS affine.\n"
            "  Reads FILE with the same checks as uploads and training and prints its dims,\n"
            "  datatype, spacing, the affine in use and its source (sform, qform, pixdim),\n"
            "  orientation code, slicing axis and intensity range. The data are read too:\n"
            "  a truncated or corrupt file exits 1.\n"
            "  --json          one JSON object on stdout\n"
            "  --max-voxels N  voxel limit (default %lld)\n",
            (long long)VOL_DEFAULT_MAX_VOXELS);
}

/* What the DICOM reader saw: series identity, grid, orientation and how slices were ordered. */
static int info_dicom(const char *path, const vol_read_opts *opts, int json)
{
    char err[768], orient[4];
    vol_t v;
    dicom_meta m;
    dicom_code code;
    if (dicom_read(path, opts, 1, &v, &m, &code, err, sizeof err) < 0) {
        fprintf(stderr, "mkdseg info: %s (%s)\n", err, dicom_code_name(code));
        return 1;
    }
    double sp[3];
    vol_geom_spacing(&v.geom, sp);
    vol_geom_orientation(&v.geom, orient);
    if (json) {
        json_t *o = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:s,s:[iii],s:[fff],s:s,s:[ffffff],s:s,s:b,s:i,s:f,s:f,s:f,s:f}",
            "file", path, "format", "DICOM", "series_uid", m.series_uid, "study_uid", m.study_uid,
            "modality", m.modality, "transfer_syntax", m.transfer_syntax, "dims", m.cols, m.rows,
            m.nslices, "spacing", sp[0], sp[1], sp[2], "orientation", orient, "image_orientation",
            m.iop[0], m.iop[1], m.iop[2], m.iop[3], m.iop[4], m.iop[5], "slice_order",
            m.slice_order, "multiframe", m.multiframe, "files", m.nfiles, "rescale_slope", m.slope,
            "rescale_intercept", m.intercept, "min", (double)v.vmin, "max", (double)v.vmax);
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        printf("file:          %s\nformat:        DICOM (%s%s, %d file%s)\n", path,
               m.transfer_syntax, m.multiframe ? ", multi-frame" : "", m.nfiles,
               m.nfiles == 1 ? "" : "s");
        printf("series:        %s\nstudy:         %s\nmodality:      %s\n", m.series_uid,
               m.study_uid, m.modality);
        printf("dims:          %d x %d x %d (columns x rows x slices)\n", m.cols, m.rows,
               m.nslices);
        printf("spacing:       %.6g x %.6g x %.6g (slice step from positions; largest deviation "
               "%.3g mm)\n",
               sp[0], sp[1], sp[2], m.max_step_dev);
        printf("orientation:   %s (ImageOrientationPatient %g %g %g / %g %g %g)\n", orient,
               m.iop[0], m.iop[1], m.iop[2], m.iop[3], m.iop[4], m.iop[5]);
        printf("slice order:   %s\n", m.slice_order);
        printf("rescale:       slope %g, intercept %g\n", m.slope, m.intercept);
        for (int r = 0; r < 4; r++)
            printf("%s[%12.6f %12.6f %12.6f %12.6f]\n",
                   r ? "               " : "affine (RAS): ", v.geom.affine[r][0],
                   v.geom.affine[r][1], v.geom.affine[r][2], v.geom.affine[r][3]);
        printf("intensity:     %g .. %g\n", (double)v.vmin, (double)v.vmax);
    }
    dicom_meta_free(&m);
    vol_free(&v);
    return 0;
}

static const char *format_name(const vol_header *h)
{
    switch (h->nifti_type) {
    case 0:
        return "ANALYZE-7.5";
    case 1:
        return "NIfTI-1";
    case 2:
        return "NIfTI-1 (hdr/img)";
    case 4:
        return "NIfTI-2";
    case 5:
        return "NIfTI-2 (hdr/img)";
    default:
        return "unknown";
    }
}

/* What both outputs derive from the geometry. */
typedef struct {
    double sp[3];   /* voxel spacing, mm */
    char orient[4]; /* orientation code, e.g. "RAS" */
    int sax;        /* slicing axis */
    int64_t slices;
} info_geom;

static void info_geom_of(const vol_geom *g, info_geom *ig)
{
    int64_t n[3] = {g->nx, g->ny, g->nz};
    vol_geom_spacing(g, ig->sp);
    vol_geom_orientation(g, ig->orient);
    ig->sax = vol_geom_slicing_axis(g);
    ig->slices = n[ig->sax];
}

/* The header and range of v as one JSON line. */
static void info_json(const char *path, const vol_t *v)
{
    const vol_geom *g = &v->geom;
    info_geom ig;
    info_geom_of(g, &ig);
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "format", json_string(format_name(&v->hdr)));
    json_object_set_new(o, "compressed", json_boolean(v->hdr.compressed));
    json_object_set_new(
        o, "dims", json_pack("[III]", (json_int_t)g->nx, (json_int_t)g->ny, (json_int_t)g->nz));
    json_object_set_new(o, "datatype", json_string(vol_datatype_name(v->hdr.datatype)));
    json_object_set_new(o, "spacing", json_pack("[fff]", ig.sp[0], ig.sp[1], ig.sp[2]));
    json_object_set_new(o, "pixdim", json_pack("[fff]", g->pixdim[1], g->pixdim[2], g->pixdim[3]));
    json_t *a = json_array();
    for (int r = 0; r < 4; r++)
        json_array_append_new(a, json_pack("[ffff]", g->affine[r][0], g->affine[r][1],
                                           g->affine[r][2], g->affine[r][3]));
    json_object_set_new(o, "affine", a);
    json_object_set_new(o, "affine_source", json_string(vol_affine_src_name(g->affine_src)));
    json_object_set_new(o, "qform_code", json_integer(g->qform_code));
    json_object_set_new(o, "sform_code", json_integer(g->sform_code));
    json_object_set_new(o, "orientation", json_string(ig.orient));
    json_object_set_new(o, "slicing_axis", json_integer(ig.sax));
    json_object_set_new(o, "slices", json_integer((json_int_t)ig.slices));
    json_object_set_new(o, "scl_slope", json_real(v->hdr.scl_slope));
    json_object_set_new(o, "scl_inter", json_real(v->hdr.scl_inter));
    json_object_set_new(o, "min", json_real(v->vmin));
    json_object_set_new(o, "max", json_real(v->vmax));
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    puts(s ? s : "{}");
    free(s);
    json_decref(o);
}

/* The header and range of v as text, one field a line. */
static void info_text(const char *path, const vol_t *v)
{
    const vol_geom *g = &v->geom;
    info_geom ig;
    info_geom_of(g, &ig);
    printf("file:          %s\n", path);
    printf("format:        %s%s%s\n", format_name(&v->hdr), v->hdr.compressed ? ", gzip" : "",
           v->hdr.byteswapped ? ", byte-swapped" : "");
    printf("dims:          %lld x %lld x %lld\n", (long long)g->nx, (long long)g->ny,
           (long long)g->nz);
    printf("datatype:      %s", vol_datatype_name(v->hdr.datatype));
    if (v->hdr.scl_slope != 0 && !(v->hdr.scl_slope == 1 && v->hdr.scl_inter == 0))
        printf(" (scl_slope %g, scl_inter %g)", v->hdr.scl_slope, v->hdr.scl_inter);
    printf("\nspacing:       %.6g x %.6g x %.6g\n", ig.sp[0], ig.sp[1], ig.sp[2]);
    printf("affine:        from %s (qform_code %d, sform_code %d)\n",
           vol_affine_src_name(g->affine_src), g->qform_code, g->sform_code);
    for (int r = 0; r < 4; r++)
        printf("               [%12.6f %12.6f %12.6f %12.6f]\n", g->affine[r][0], g->affine[r][1],
               g->affine[r][2], g->affine[r][3]);
    printf("orientation:   %s\n", ig.orient);
    printf("slicing axis:  %d (%c), %lld slices\n", ig.sax, "ijk"[ig.sax], (long long)ig.slices);
    printf("intensity:     %g .. %g\n", (double)v->vmin, (double)v->vmax);
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
    if (dicom_sniff(path) == 1)
        return info_dicom(path, &opts, json);
    char err[512];
    vol_t v;
    if (vol_read(path, &opts, &v, err, sizeof err) != 0) {
        fprintf(stderr, "mkdseg info: %s\n", err);
        return 1;
    }
    if (json)
        info_json(path, &v);
    else
        info_text(path, &v);
    vol_free(&v);
    return 0;
}
