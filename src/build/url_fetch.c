/* url_fetch.c - download ADD URL sources (see url_fetch.h). */
#include "build/url_fetch.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef struct sink
{
  int fd;
  digest_ctx *d;
  uint64_t size, max;
  kiln_error *err;
} sink;

static size_t
on_data (char *p, size_t sz, size_t n, void *ud)
{
  sink *s = ud;
  size_t len = sz * n;
  if (s->size + len > s->max)
    {
      kiln_error_make (&s->err, EFBIG, "the body is larger than %llu bytes", (unsigned long long) s->max);
      return 0;
    }
  if (fs_write_all (s->fd, p, len, &s->err) < 0)
    return 0;
  digest_update (s->d, p, len);
  s->size += len;
  return len;
}

int
url_fetch_to_fd (const char *url, int fd, uint64_t max, url_fetch_result *res, kiln_error **err)
{
  if (ftruncate (fd, 0) < 0 || lseek (fd, 0, SEEK_SET) < 0)
    return kiln_error_make (err, errno, "downloading '%s': temporary file", url);
  CURL *c = curl_easy_init ();
  if (!c)
    return kiln_error_make (err, ENOMEM, "downloading '%s': curl_easy_init", url);
  autodigest digest_ctx *d = digest_new ();
  sink s = { fd, d, 0, max, NULL };
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt (c, CURLOPT_FILETIME, 1L);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt (c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, &s);
  CURLcode rc = curl_easy_perform (c);
  long status = 0;
  curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t ft = -1;
  curl_easy_getinfo (c, CURLINFO_FILETIME_T, &ft);
  curl_easy_cleanup (c);
  if (s.err)
    {
      *err = s.err;
      return kiln_error_wrap (err, "downloading '%s'", url);
    }
  if (rc != CURLE_OK)
    return kiln_error_make (err, EIO, "downloading '%s': %s", url, errbuf[0] ? errbuf : curl_easy_strerror (rc));
  if (status >= 400)
    return kiln_error_make (err, EIO, "downloading '%s': the server answered HTTP %ld", url, status);
  digest_final (d, res->digest);
  res->size = s.size;
  res->mtime = ft >= 0 ? (int64_t) ft : -1;
  return 0;
}

char *
url_fetch_basename (const char *url)
{
  const char *p = strstr (url, "://");
  p = p ? p + 3 : url;
  p += strcspn (p, "/"); /* skip the host */
  size_t len = strcspn (p, "?#");
  while (len > 0 && p[len - 1] == '/')
    len--;
  const char *start = p + len;
  while (start > p && start[-1] != '/')
    start--;
  if (start == p + len)
    return NULL;
  return xstrndup (start, (size_t) (p + len - start));
}
