/* mkd_err.c: see mkd_err.h. */
#include "mkd_err.h"

#include <stdarg.h>
#include <stdio.h>

void mkd_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
