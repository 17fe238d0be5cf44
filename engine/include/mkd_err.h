/* mkd_err.h: the engine's one way to fill an error buffer. Engine functions that can fail take
 * (char *err, size_t errlen) and return 0 / -1 (or NULL); the message says what failed in
 * words a user can act on. */
#ifndef MKD_ERR_H
#define MKD_ERR_H

#include <stddef.h>

/* printf into err[errlen]; does nothing when err is NULL or errlen 0. */
void mkd_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
