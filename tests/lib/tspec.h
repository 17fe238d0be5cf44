/* tspec.h: what api/openapi.yaml says about one operation, for tests that hold the server to
 * its contract (read simply: under `paths:`, a path at indent 2, a method at indent 4, the
 * operation's keys at indent 6). */
#ifndef MKDSEG_TESTS_TSPEC_H
#define MKDSEG_TESTS_TSPEC_H

#include <stddef.h>

/* The scope the operation (METHOD in upper case, path as in the spec) names in its
 * `security:` line: "public" for `security: []`, the name in `security: [{bearer: [NAME]}]`,
 * "" when the operation has no such line. 0, or -1 when the file or the operation is missing. */
int tspec_scope(const char *method, const char *path, char *out, size_t cap);

#endif
