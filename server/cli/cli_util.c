/* cli_util.c: see cli_util.h. */
#include "cli_util.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int add(cli_pairs *p, const char *img, const char *lab, const char *name)
{
    if (p->n == p->cap) {
        int nc = p->cap ? 2 * p->cap : 16;
        char **a = realloc(p->image, nc * sizeof *a);
        if (!a)
            return -1;
        p->image = a;
        char **b = realloc(p->label, nc * sizeof *b);
        if (!b)
            return -1;
        p->label = b;
        char **c = realloc(p->name, nc * sizeof *c);
        if (!c)
            return -1;
        p->name = c;
        p->cap = nc;
    }
    p->image[p->n] = strdup(img);
    p->label[p->n] = lab ? strdup(lab) : NULL;
    p->name[p->n] = strdup(name);
    p->n++;
    return 0;
}

void cli_pairs_free(cli_pairs *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->image[i]);
        free(p->label[i]);
        free(p->name[i]);
    }
    free(p->image);
    free(p->label);
    free(p->name);
    memset(p, 0, sizeof *p);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int cli_pairs_from_dir(cli_pairs *p, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open folder %s", dir);
        return -1;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = strstr(e->d_name, "_image.nii");
        if (!s || (strcmp(s, "_image.nii") && strcmp(s, "_image.nii.gz")))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmpstr);
    int before = p->n;
    for (int i = 0; i < n; i++) {
        char img[4096], lab[4096], base[1024];
        const char *s = strstr(names[i], "_image.nii");
        snprintf(base, sizeof base, "%.*s", (int)(s - names[i]), names[i]);
        snprintf(img, sizeof img, "%s/%s", dir, names[i]);
        snprintf(lab, sizeof lab, "%s/%s_label.nii.gz", dir, base);
        if (!exists(lab))
            snprintf(lab, sizeof lab, "%s/%s_label.nii", dir, base);
        if (exists(lab))
            add(p, img, lab, base);
        free(names[i]);
    }
    free(names);
    if (p->n == before) {
        snprintf(err, errlen,
                 "folder %s holds no <name>_image.nii[.gz] with a matching <name>_label.nii[.gz]",
                 dir);
        return -1;
    }
    return 0;
}

static int split(const char *s, char ***out)
{
    int n = 0;
    char *dup = strdup(s), *save = NULL;
    *out = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char **nn = realloc(*out, (n + 1) * sizeof *nn);
        if (!nn)
            break;
        *out = nn;
        (*out)[n++] = strdup(tok);
    }
    free(dup);
    return n;
}

int cli_pairs_from_lists(cli_pairs *p, const char *images, const char *labels, char *err,
                         size_t errlen)
{
    char **a = NULL, **b = NULL;
    int na = split(images, &a), nb = labels ? split(labels, &b) : 0, rc = -1;
    if (!na) {
        snprintf(err, errlen, "empty image list");
        goto done;
    }
    if (labels && na != nb) {
        snprintf(err, errlen, "%d images but %d labels", na, nb);
        goto done;
    }
    for (int i = 0; i < na; i++) {
        const char *slash = strrchr(a[i], '/'), *base = slash ? slash + 1 : a[i];
        char name[1024];
        snprintf(name, sizeof name, "%s", base);
        char *dot = strstr(name, ".nii");
        if (dot)
            *dot = 0;
        char *im = strstr(name, "_image");
        if (im && !im[6])
            *im = 0;
        add(p, a[i], labels ? b[i] : NULL, name);
    }
    rc = 0;
done:
    for (int i = 0; i < na; i++)
        free(a[i]);
    for (int i = 0; i < nb; i++)
        free(b[i]);
    free(a);
    free(b);
    return rc;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name, int *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    *missing = 0;
    if (strncmp(a, name, n))
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n])
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

void cli_block_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}
