/* ct_compare.c: see ct_compare.h. */
#include "ct_compare.h"

#include <string.h>

int ct_equal(const void *a, const void *b, size_t n)
{
    /* volatile: the compiler may not stop at the first difference */
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

int ct_streq(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t na = strlen(a), nb = strlen(b);
    /* always compare na bytes: against b itself when the lengths match, else against a, so
     * the loop runs the same whatever b holds; the result is then forced to 0 */
    int eq = ct_equal(a, na == nb ? b : a, na);
    return eq & (na == nb);
}
