/* sha256.h: SHA-256 as lowercase hex (OpenSSL), for token hashes and migration checksums. */
#ifndef MKDSEG_SHA256_H
#define MKDSEG_SHA256_H

#include <stddef.h>

/* hex[65] = the digest of data[len] as 64 hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char hex[65]);

#endif
