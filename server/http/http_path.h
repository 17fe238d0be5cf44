/* http_path.h: decoding of the request target's %HH escapes. libmicrohttpd decodes the path in
 * place into a C string, so "%00" would silently cut it there ("/ui/index.html%00.png" would
 * reach the handlers as "/ui/index.html"). http_unescape is the daemon's unescape callback: it
 * decodes as libmicrohttpd does but turns every decoded NUL into 0x01, so that nothing is cut
 * and the request is refused (http_path_has_control: 400) instead. */
#ifndef MKDSEG_HTTP_PATH_H
#define MKDSEG_HTTP_PATH_H

#include <stddef.h>

struct MHD_Connection;

/* MHD_OPTION_UNESCAPE_CALLBACK: decodes s in place; returns its length. */
size_t http_unescape(void *cls, struct MHD_Connection *c, char *s);

/* Whether s holds a control byte (0x01-0x1F, 0x7F): one that a path can carry only encoded. */
int http_path_has_control(const char *s);

#endif
