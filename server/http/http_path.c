/* http_path.c: see http_path.h. */
#include "http_path.h"

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <microhttpd.h>

size_t http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    size_t n = MHD_http_unescape(s);
    for (size_t i = 0; i < n; i++)
        if (s[i] == 0)
            s[i] = 0x01;
    return n;
}

int http_path_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}
