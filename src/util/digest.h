/* digest.h - streaming SHA-256 (OpenSSL EVP) and "sha256:<hex>" digests. */
#ifndef KILN_UTIL_DIGEST_H
#define KILN_UTIL_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/error.h"

#define DIGEST_SHA256_LEN 32
#define DIGEST_SHA256_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define DIGEST_STRING_SIZE (7 + DIGEST_SHA256_HEX_LEN + 1)

typedef struct digest_ctx digest_ctx;

digest_ctx *digest_new (void);
void digest_free (digest_ctx *d);
void cleanup_digestp (digest_ctx **d);
#define autodigest __attribute__ ((cleanup (cleanup_digestp)))

void digest_update (digest_ctx *d, const void *data, size_t len);
/* Finish and write "sha256:<hex>" into out (DIGEST_STRING_SIZE bytes). The
 * context is reset and may be reused. */
void digest_final (digest_ctx *d, char out[DIGEST_STRING_SIZE]);
/* Bytes hashed so far since the last reset. */
uint64_t digest_bytes (const digest_ctx *d);

/* One-shot hash of a buffer. */
void digest_buffer (const void *data, size_t len, char out[DIGEST_STRING_SIZE]);
/* Hash a whole file (opened by the caller). */
int digest_fd (int fd, char out[DIGEST_STRING_SIZE], uint64_t *size, kiln_error **err);

/* Validate "sha256:<64 lowercase hex>" (the only algorithm kiln accepts;
 * sha512 and others are rejected with a message naming them). */
int digest_validate (const char *digest, kiln_error **err);
/* Return the hex part of a valid digest (pointer into digest). */
const char *digest_hex (const char *digest);

/* Compare the final digest of d against expected; an error names both. The
 * context is reset. */
int digest_verify (digest_ctx *d, const char *expected, kiln_error **err);

#endif
