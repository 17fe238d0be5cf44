/* redact.h: keeping server paths out of what clients read. Error messages from the engine
 * name the file they were reading ("<path>: a 4-D image ..."); the path of an upload's
 * temporary file or of a blob is the server's business, so answers and job errors carry the
 * client's file name (or only a last path component) instead. Logs keep the full message. */
#ifndef MKDSEG_REDACT_H
#define MKDSEG_REDACT_H

#include <stddef.h>

/* Replaces every occurrence of `path` in msg (a buffer of cap bytes, NUL-terminated) with
 * `name`. Nothing happens when path is NULL or empty. The result is truncated to cap. */
void redact_replace(char *msg, size_t cap, const char *path, const char *name);

/* Replaces every path in msg that starts at a word boundary with one of the folders
 * dirs[0..n) (followed by '/') by its last component. Entries that are NULL or empty are
 * skipped. */
void redact_dirs(char *msg, size_t cap, const char *const *dirs, int n);

/* redact_dirs with the places the server writes to: data_dir as given and as an absolute
 * path, /tmp, /var/tmp and $TMPDIR. Returns 1 when msg changed, else 0. */
int redact_server_paths(char *msg, size_t cap, const char *data_dir);

/* Replaces every byte of s that is not part of a valid UTF-8 sequence (overlong forms,
 * surrogates and code points above U+10FFFF included) with '?', in place, so that a message
 * quoting client bytes (a path, a file name) can go into JSON. Returns how many were replaced. */
int redact_utf8(char *s);

#endif
