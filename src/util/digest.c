/* digest.c - streaming SHA-256 on OpenSSL's EVP interface. */
#include "util/digest.h"
#include "util/alloc.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct digest_ctx
{
  EVP_MD_CTX *md;
  uint64_t bytes;
};

static void
digest_reset (digest_ctx *d)
{
  if (EVP_DigestInit_ex (d->md, EVP_sha256 (), NULL) != 1)
    abort ();
  d->bytes = 0;
}

digest_ctx *
digest_new (void)
{
  digest_ctx *d = xzalloc (sizeof *d);
  d->md = EVP_MD_CTX_new ();
  if (d->md == NULL)
    abort ();
  digest_reset (d);
  return d;
}

void
digest_free (digest_ctx *d)
{
  if (d == NULL)
    return;
  EVP_MD_CTX_free (d->md);
  free (d);
}

void
cleanup_digestp (digest_ctx **d)
{
  digest_free (*d);
  *d = NULL;
}

void
digest_update (digest_ctx *d, const void *data, size_t len)
{
  if (len == 0)
    return;
  if (EVP_DigestUpdate (d->md, data, len) != 1)
    abort ();
  d->bytes += len;
}

uint64_t
digest_bytes (const digest_ctx *d)
{
  return d->bytes;
}

/* "sha256:" and the lowercase hex of the n-byte hash md. */
static void
format_digest (const unsigned char *md, unsigned int n, char out[DIGEST_STRING_SIZE])
{
  static const char hex[] = "0123456789abcdef";
  memcpy (out, "sha256:", 7);
  for (unsigned int i = 0; i < n; i++)
    {
      out[7 + 2 * i] = hex[md[i] >> 4];
      out[7 + 2 * i + 1] = hex[md[i] & 15];
    }
  out[7 + 2 * n] = '\0';
}

void
digest_final (digest_ctx *d, char out[DIGEST_STRING_SIZE])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex (d->md, md, &n) != 1 || n != DIGEST_SHA256_LEN)
    abort ();
  format_digest (md, n, out);
  digest_reset (d);
}

void
digest_buffer (const void *data, size_t len, char out[DIGEST_STRING_SIZE])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest (data, len, md, &n, EVP_sha256 (), NULL) != 1)
    abort ();
  format_digest (md, n, out);
}

int
digest_fd (int fd, char out[DIGEST_STRING_SIZE], uint64_t *size, kiln_error **err)
{
  autodigest digest_ctx *d = digest_new ();
  char buf[1 << 16];
  for (;;)
    {
      ssize_t r = read (fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return kiln_error_make (err, errno, "read for digest");
      if (r == 0)
        break;
      digest_update (d, buf, (size_t) r);
    }
  if (size)
    *size = digest_bytes (d);
  digest_final (d, out);
  return 0;
}

int
digest_validate (const char *digest, kiln_error **err)
{
  const char *colon = strchr (digest, ':');
  if (colon == NULL)
    return kiln_error_make (err, 0, "invalid digest '%s': missing algorithm prefix", digest);
  if ((size_t) (colon - digest) != 6 || strncmp (digest, "sha256", 6) != 0)
    return kiln_error_make (err, 0, "unsupported digest algorithm '%.*s' in '%s' (only sha256)",
                            (int) (colon - digest), digest, digest);
  const char *h = colon + 1;
  size_t n = strlen (h);
  if (n != DIGEST_SHA256_HEX_LEN)
    return kiln_error_make (err, 0, "invalid digest '%s': expected 64 hex characters", digest);
  for (size_t i = 0; i < n; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
      return kiln_error_make (err, 0, "invalid digest '%s': not lowercase hex", digest);
  return 0;
}

const char *
digest_hex (const char *digest)
{
  const char *c = strchr (digest, ':');
  return c ? c + 1 : digest;
}

int
digest_verify (digest_ctx *d, const char *expected, kiln_error **err)
{
  char got[DIGEST_STRING_SIZE];
  digest_final (d, got);
  if (strcmp (got, expected) != 0)
    return kiln_error_make (err, 0, "digest mismatch: expected %s, got %s", expected, got);
  return 0;
}
