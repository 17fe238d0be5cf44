/* api_ui.h: the dashboard's helpers shared by its handlers and tests: the file-name rule and
 * content types of handlers_ui.c, and the disagreement map's storage (handlers_uncertainty.c),
 * which /segment calls. */
#ifndef MKDSEG_API_UI_H
#define MKDSEG_API_UI_H

#include <jansson.h>

#include "http.h"

struct seg_task;
/* Stores the disagreement map t wrote (when it wrote one) as a blob: sha, rel (blob path) and
 * *summary (JSON, caller owns; NULL when there is no map). 0, or -1 after answering 500. */
int api_unc_store(http_req *r, const struct seg_task *t, char sha[65], char rel[256],
                  json_t **summary);

/* Whether name is an acceptable dashboard file name (one segment of [A-Za-z0-9._-], no
 * leading dot); the Content-Type for its extension (NULL: not served), *text when it is text. */
int ui_name_ok(const char *name);
const char *ui_content_type(const char *name, int *text);
extern const char ui_csp[];

#endif
