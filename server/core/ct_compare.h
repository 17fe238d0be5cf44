/* ct_compare.h: comparing secrets in constant time. Wherever a secret (or a secret's hash)
 * held by the server is compared with one a client sent, the time the comparison takes must
 * not depend on where the two first differ, else a client can find the secret byte by byte. */
#ifndef MKDSEG_CT_COMPARE_H
#define MKDSEG_CT_COMPARE_H

#include <stddef.h>

/* 1 when a[0..n) equals b[0..n), else 0; reads all n bytes of both whatever they hold. */
int ct_equal(const void *a, const void *b, size_t n);

/* 1 when the NUL-terminated strings are equal, else 0 (NULL equals nothing). The time depends
 * on the lengths only (which are not secret for the fixed-length hashes compared here). */
int ct_streq(const char *a, const char *b);

#endif
