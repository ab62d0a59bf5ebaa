/* url_fetch.h - ADD <http(s) URL>: download a remote file for a layer.
 *
 * libcurl (the registry client's transport) with the environment's proxy
 * settings, TLS verification, redirects (at most 10), a connect timeout and
 * a stall timeout. The body streams into fd while SHA-256 is computed, so
 * ADD --checksum is verified without a second pass. HTTP errors name the URL
 * and the status. Last-Modified, when the server sends it, becomes the
 * file's mtime (Docker's rule).
 */
#ifndef KILN_BUILD_URL_FETCH_H
#define KILN_BUILD_URL_FETCH_H

#include <stdbool.h>
#include <stdint.h>
#include "util/digest.h"
#include "util/error.h"

typedef struct url_fetch_result
{
  char digest[DIGEST_STRING_SIZE];  /* sha256 of the body */
  uint64_t size;
  int64_t mtime;                    /* Last-Modified, or -1 */
} url_fetch_result;

/* Download url into fd (truncated first). max: refuse bodies larger than
 * this. */
int url_fetch_to_fd (const char *url, int fd, uint64_t max, url_fetch_result *res, kiln_error **err);

/* The file name Docker gives a URL source copied into a directory: the last
 * non-empty path component (query and fragment removed), or NULL when the
 * URL has none. Caller frees. */
char *url_fetch_basename (const char *url);

#endif
