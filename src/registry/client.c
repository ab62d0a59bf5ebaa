/* client.c - OCI distribution HTTP client on libcurl (see client.h):
 * clients, requests with retries and backoff, blob GET with Range resume,
 * push primitives. Credentials and the token flow are in client_auth.c. */
#include "registry/client.h"
#include "registry/client_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "registry/authfile.h"
#include "registry/blobprogress.h"
#include "registry/manifest.h"
#include "registry/reference.h"
#include "registry/transfer.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"

#define ERROR_BODY_MAX (64 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void
curl_init_once (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
}

void
registry_client_free (registry_client *c)
{
  if (!c)
    return;
  if (c->curl)
    curl_easy_cleanup (c->curl);
  transfer_engine_unref (c->engine);
  free (c->domain);
  free (c->base);
  free (c->ca_file);
  free (c->client_cert);
  free (c->client_key);
  xfree_secret (c->auth_header);
  free (c->auth_scope);
  registry_credential_clear (&c->cred);
  free (c);
}

void
cleanup_registry_clientp (registry_client **c)
{
  registry_client_free (*c);
  *c = NULL;
}

struct blobprogress *
registry_client_progress (const registry_client *c)
{
  return c->progress;
}

void
registry_client_set_upload_progress (registry_client *c, int id)
{
  c->progress_id = id;
}

const char *
registry_client_base_url (const registry_client *c)
{
  return c->base;
}

/* --registry-client-cert DOMAIN=CERT,KEY for c's domain: both readable. */
static int
client_cert_from (registry_client *c, const registry_options *opts, kiln_error **err)
{
  size_t dl = strlen (c->domain);
  for (char **r = opts->registry_client_certs; r && *r; r++)
    if (strncmp (*r, c->domain, dl) == 0 && (*r)[dl] == '=')
      {
        const char *v = *r + dl + 1;
        const char *comma = strchr (v, ',');
        if (!comma || comma == v || comma[1] == '\0')
          return kiln_error_make (err, EINVAL, "client certificate for '%s': expected CERT,KEY, got '%s'", c->domain,
                                  v);
        free (c->client_cert);
        free (c->client_key);
        c->client_cert = xstrndup (v, (size_t) (comma - v));
        c->client_key = xstrdup (comma + 1);
        const char *files[] = { c->client_cert, c->client_key };
        for (size_t i = 0; i < 2; i++)
          if (access (files[i], R_OK) < 0)
            return kiln_error_make (err, errno, "client certificate for '%s': cannot read '%s'", c->domain, files[i]);
      }
  return 0;
}

int
registry_client_new (const registry_options *opts, const char *domain, registry_client **out, kiln_error **err)
{
  pthread_once (&curl_once, curl_init_once);
  registry_client *c = xzalloc (sizeof *c);
  c->domain = xstrdup (domain);
  bool plain = opts->insecure;
  for (char **r = opts->insecure_registries; r && *r; r++)
    if (strcmp (*r, domain) == 0)
      plain = true;
  c->base = xasprintf ("%s://%s", plain ? "http" : "https", registry_domain_api_host (domain));
  c->tls_verify = !opts->skip_tls_verify;
  for (char **r = opts->skip_tls_verify_registries; r && *r; r++)
    if (strcmp (*r, domain) == 0)
      c->tls_verify = false;
  size_t dl = strlen (domain);
  for (char **r = opts->registry_certs; r && *r; r++)
    if (strncmp (*r, domain, dl) == 0 && (*r)[dl] == '=')
      {
        free (c->ca_file);
        c->ca_file = xstrdup (*r + dl + 1);
        if (access (c->ca_file, R_OK) < 0)
          {
            int e = errno;
            registry_client_free (c);
            return kiln_error_make (err, e, "registry certificate for '%s': cannot read '%s'", domain, *r + dl + 1);
          }
      }
  if (client_cert_from (c, opts, err) < 0)
    {
      registry_client_free (c);
      return -1;
    }
  c->retries = opts->retries < 0 ? 4 : opts->retries;
  c->connect_timeout_s = opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 30;
  c->stall_timeout_s = opts->stall_timeout_s > 0 ? opts->stall_timeout_s : 60;
  c->cancel = opts->cancel;
  c->progress = opts->progress;
  c->progress_id = -1;
  c->engine = transfer_engine_new ();
  c->curl = curl_easy_init ();
  if (!c->curl)
    {
      registry_client_free (c);
      return kiln_error_make (err, ENOMEM, "initialising libcurl");
    }
  *out = c;
  return 0;
}

registry_client *
registry_client_clone (const registry_client *c)
{
  registry_client *n = xzalloc (sizeof *n);
  n->domain = xstrdup (c->domain);
  n->base = xstrdup (c->base);
  n->tls_verify = c->tls_verify;
  n->ca_file = c->ca_file ? xstrdup (c->ca_file) : NULL;
  n->client_cert = c->client_cert ? xstrdup (c->client_cert) : NULL;
  n->client_key = c->client_key ? xstrdup (c->client_key) : NULL;
  n->retries = c->retries;
  n->connect_timeout_s = c->connect_timeout_s;
  n->stall_timeout_s = c->stall_timeout_s;
  n->cancel = c->cancel;
  n->progress = c->progress;
  n->progress_id = -1;
  n->auth_header = c->auth_header ? xstrdup (c->auth_header) : NULL;
  n->auth_scope = c->auth_scope ? xstrdup (c->auth_scope) : NULL;
  n->auth_expires = c->auth_expires;
  n->cred_loaded = c->cred_loaded;
  n->cred.username = c->cred.username ? xstrdup (c->cred.username) : NULL;
  n->cred.password = c->cred.password ? xstrdup (c->cred.password) : NULL;
  n->cred.identity_token = c->cred.identity_token ? xstrdup (c->cred.identity_token) : NULL;
  n->engine = transfer_engine_ref (c->engine);
  n->curl = curl_easy_init ();
  if (!n->curl)
    abort (); /* out of memory, as xmalloc */
  return n;
}

/* ---- response callbacks ---- */

static void
resp_reset_headers (http_resp *r)
{
  free (r->content_type);
  free (r->www_auth);
  free (r->retry_after);
  free (r->content_range);
  free (r->location);
  r->content_type = r->www_auth = r->retry_after = r->content_range = r->location = NULL;
}

void
registry_client_resp_release (http_resp *r)
{
  resp_reset_headers (r);
  strbuf_release (&r->body);
  kiln_error_free (r->sink_err);
  r->sink_err = NULL;
}

static char *
header_value (const char *line, size_t n, const char *name)
{
  size_t nl = strlen (name);
  if (n <= nl || strncasecmp (line, name, nl) != 0 || line[nl] != ':')
    return NULL;
  const char *v = line + nl + 1;
  const char *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  return xstrndup (v, (size_t) (end - v));
}

static size_t
on_header (char *buf, size_t size, size_t n, void *ud)
{
  http_resp *r = ud;
  size_t len = size * n;
  char *v;
  if (len >= 5 && strncmp (buf, "HTTP/", 5) == 0)
    {
      /* A new response (redirect or 100). The status is taken here, not
       * from curl_easy_getinfo: on_data runs on another thread than the
       * one driving the handle (transfer.h). */
      resp_reset_headers (r);
      const char *sp = memchr (buf, ' ', len);
      r->status = sp ? strtol (sp + 1, NULL, 10) : 0;
    }
  else if ((v = header_value (buf, len, "content-type")))
    free (r->content_type), r->content_type = v;
  else if ((v = header_value (buf, len, "www-authenticate")))
    {
      /* Several headers: join as one list, as RFC 7230 allows. */
      if (r->www_auth)
        {
          char *j = xasprintf ("%s, %s", r->www_auth, v);
          free (r->www_auth);
          free (v);
          v = j;
        }
      r->www_auth = v;
    }
  else if ((v = header_value (buf, len, "retry-after")))
    free (r->retry_after), r->retry_after = v;
  else if ((v = header_value (buf, len, "content-range")))
    free (r->content_range), r->content_range = v;
  else if ((v = header_value (buf, len, "location")))
    free (r->location), r->location = v;
  return len;
}

static size_t
on_data (char *buf, size_t size, size_t n, void *ud)
{
  http_resp *r = ud;
  size_t len = size * n;
  if (!r->started)
    {
      r->started = true;
      /* The server ignored our Range: drop what we already have. */
      if (r->status == 200)
        r->skip = r->range_from;
    }
  if (r->sink && r->status >= 200 && r->status < 300)
    {
      const char *p = buf;
      size_t left = len;
      if (r->skip)
        {
          size_t s = left < r->skip ? left : (size_t) r->skip;
          r->skip -= s;
          p += s;
          left -= s;
        }
      if (left == 0)
        return len;
      if (r->limit >= 0 && r->received + left > (uint64_t) r->limit)
        {
          r->over_limit = true;
          return 0;
        }
      digest_update (r->dg, p, left);
      r->received += left;
      if (r->sink (r->sink_ctx, p, left, &r->sink_err) < 0)
        return 0;
      return len;
    }
  if (r->body.len + len > r->body_max)
    {
      if (r->sink || r->status >= 300)
        {
          /* Error bodies are only for messages: keep the start. */
          r->body_truncated = true;
          size_t room = r->body_max > r->body.len ? r->body_max - r->body.len : 0;
          strbuf_add (&r->body, buf, room);
          return len;
        }
      r->over_limit = true;
      return 0;
    }
  strbuf_add (&r->body, buf, len);
  return len;
}


/* ---- errors ---- */

/* "HTTP 404 MANIFEST_UNKNOWN: manifest unknown" from a registry error body. */
char *
registry_client_describe_answer (const http_resp *r)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  strbuf_addf (&sb, "HTTP %ld", r->status);
  autojson json_value *v = NULL;
  if (r->body.len && json_parse (r->body.buf, r->body.len, ERROR_BODY_MAX, &v, NULL) >= 0)
    {
      json_value *errs = json_get_array (v, "errors");
      for (size_t i = 0; i < json_array_size (errs) && i < 3; i++)
        {
          json_value *e = json_array_get (errs, i);
          const char *code = json_get_string (e, "code");
          const char *msg = json_get_string (e, "message");
          strbuf_addf (&sb, "%s%.100s%s%.300s", i ? "; " : " ", code ? code : "", code && msg ? ": " : "",
                       msg ? msg : "");
        }
    }
  else if (r->body.len && !r->sink)
    {
      /* Plain-text answer: its first line, printable characters only. */
      strbuf_adds (&sb, ": ");
      for (size_t i = 0; i < r->body.len && i < 200 && r->body.buf[i] != '\n'; i++)
        strbuf_addch (&sb, (r->body.buf[i] >= 0x20 && r->body.buf[i] < 0x7f) ? r->body.buf[i] : '?');
    }
  return strbuf_detach (&sb, NULL);
}

/* ---- requests ---- */

typedef struct read_state
{
  int fd;
  int64_t off;
  int64_t left;
} read_state;

static size_t
on_read (char *buf, size_t size, size_t n, void *ud)
{
  read_state *st = ud;
  size_t want = size * n;
  if ((int64_t) want > st->left)
    want = (size_t) st->left;
  if (want == 0)
    return 0;
  for (;;)
    {
      ssize_t r = pread (st->fd, buf, want, st->off);
      if (r > 0)
        {
          st->off += r;
          st->left -= r;
          return (size_t) r;
        }
      if (r == 0)
        return CURL_READFUNC_ABORT; /* the file shrank */
      if (errno != EINTR)
        return CURL_READFUNC_ABORT;
    }
}

bool
registry_client_cancelled (const registry_client *c)
{
  return c->cancel && *c->cancel;
}

int
registry_client_cancel_error (registry_client *c, const char *repo, const char *what, kiln_error **err)
{
  int sig = (int) *c->cancel;
  return kiln_error_make (err, EINTR, "registry '%s', repository '%s': %s: interrupted by %s", c->domain, repo, what,
                          sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal");
}

/* On the transfer engine's I/O thread. */
static int
on_progress (void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  (void) dltotal, (void) dlnow, (void) ultotal;
  registry_client *c = ud;
  if (c->progress && c->progress_id >= 0 && ulnow > 0)
    blobprogress_set (c->progress, c->progress_id, (uint64_t) (c->upload_offset + ulnow));
  return registry_client_cancelled (c) ? 1 : 0; /* non-zero aborts the transfer */
}

int
registry_client_perform_once (registry_client *c, const request *q, const char *auth, uint64_t range_from,
                              http_resp *r, CURLcode *code, char *errbuf)
{
  CURL *h = c->curl;
  curl_easy_reset (h);
  struct curl_slist *hdrs = NULL;
  autofree char *accept = q->accept ? xasprintf ("Accept: %s", q->accept) : NULL;
  autofree char *range = range_from ? xasprintf ("Range: bytes=%llu-", (unsigned long long) range_from) : NULL;
  autofree char *ctype = q->content_type ? xasprintf ("Content-Type: %s", q->content_type) : NULL;
  if (accept)
    hdrs = curl_slist_append (hdrs, accept);
  if (ctype)
    hdrs = curl_slist_append (hdrs, ctype);
  autofree char *crange = q->content_range ? xasprintf ("Content-Range: %s", q->content_range) : NULL;
  if (crange)
    hdrs = curl_slist_append (hdrs, crange);
  if (auth)
    hdrs = curl_slist_append (hdrs, auth);
  if (range)
    hdrs = curl_slist_append (hdrs, range);
  curl_easy_setopt (h, CURLOPT_URL, q->url);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt (h, CURLOPT_USERAGENT, "kiln/0.1");
  curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, q->follow ? 1L : 0L);
  curl_easy_setopt (h, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (h, CURLOPT_XFERINFODATA, c);
  curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, c->stall_timeout_s);
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
  if (c->ca_file)
    curl_easy_setopt (h, CURLOPT_CAINFO, c->ca_file);
  if (c->client_cert)
    {
      curl_easy_setopt (h, CURLOPT_SSLCERT, c->client_cert);
      curl_easy_setopt (h, CURLOPT_SSLKEY, c->client_key);
    }
  read_state rs = { q->upload_fd, q->upload_offset, q->upload_size };
  c->upload_offset = q->upload_offset;
  if (strcmp (q->method, "HEAD") == 0)
    curl_easy_setopt (h, CURLOPT_NOBODY, 1L);
  else if ((strcmp (q->method, "PUT") == 0 || strcmp (q->method, "PATCH") == 0) && q->upload_fd >= 0)
    {
      if (strcmp (q->method, "PATCH") == 0)
        curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, "PATCH");
      /* No "Expect: 100-continue" round trip before each blob. */
      hdrs = curl_slist_append (hdrs, "Expect:");
      curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdrs);
      curl_easy_setopt (h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt (h, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt (h, CURLOPT_READDATA, &rs);
      curl_easy_setopt (h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) q->upload_size);
    }
  else if (strcmp (q->method, "POST") == 0 || strcmp (q->method, "PUT") == 0 || strcmp (q->method, "PATCH") == 0)
    {
      curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, q->method);
      curl_easy_setopt (h, CURLOPT_POSTFIELDS, q->body ? q->body : "");
      curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) q->body_len);
    }
  else if (strcmp (q->method, "GET") != 0)
    curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, q->method);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, r);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  errbuf[0] = '\0';
  r->curl = h;
  r->status = 0;
  r->range_from = range_from;
  r->started = false;
  r->skip = 0;
  strbuf_reset (&r->body);
  r->body_truncated = false;
  *code = transfer_perform (c->engine, h, on_data, r);
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &r->status);
  if (log_enabled (LOG_LEVEL_DEBUG))
    {
      long ver = 0, conns = 0;
      curl_easy_getinfo (h, CURLINFO_HTTP_VERSION, &ver);
      curl_easy_getinfo (h, CURLINFO_NUM_CONNECTS, &conns);
      log_debug ("registry %s: %s: HTTP %ld over %s, %s connection", c->domain, q->what, r->status,
                 ver == CURL_HTTP_VERSION_2_0 ? "HTTP/2" : ver == CURL_HTTP_VERSION_1_1 ? "HTTP/1.1" : "HTTP/1.0",
                 conns ? "new" : "reused");
    }
  /* Never leave the header list (it may hold a secret) referenced. */
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all (hdrs);
  return 0;
}

/* Sleep before retry attempt+1; false when interrupted meanwhile. */
bool
registry_client_backoff_sleep (const registry_client *c, int attempt, const char *retry_after)
{
  long ms = 250L << (attempt < 8 ? attempt : 8);
  if (retry_after)
    {
      char *end;
      long s = strtol (retry_after, &end, 10);
      if (end != retry_after && *end == '\0' && s >= 0)
        ms = (s > 60 ? 60 : s) * 1000L;
    }
  ms += (long) (random () % 250);
  /* In slices, so a signal stops the wait promptly. */
  while (ms > 0 && !registry_client_cancelled (c))
    {
      long slice = ms < 100 ? ms : 100;
      struct timespec ts = { 0, slice * 1000000L };
      while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
        ;
      ms -= slice;
    }
  return !registry_client_cancelled (c);
}

/* Perform q with auth and retries. Streaming state in r persists across
 * attempts (resume from r->received). Returns 0 with r->status set (any
 * status the caller must judge), or an error for transport failures. */
static int
do_request (registry_client *c, const request *q, http_resp *r, kiln_error **err)
{
  bool reauthed = false;
  char errbuf[CURL_ERROR_SIZE];
  for (int attempt = 0;;)
    {
      CURLcode code;
      uint64_t from = r->sink ? r->received : 0;
      if (c->auth_expires)
        {
          struct timespec now;
          clock_gettime (CLOCK_MONOTONIC, &now);
          if (now.tv_sec >= c->auth_expires)
            {
              /* Expired: go without it; the 401 fetches a fresh one. */
              xfree_secret (c->auth_header);
              c->auth_header = NULL;
              c->auth_expires = 0;
            }
        }
      if (registry_client_cancelled (c))
        return registry_client_cancel_error (c, q->repo, q->what, err);
      registry_client_perform_once (c, q, c->auth_header, from, r, &code, errbuf);
      if (registry_client_cancelled (c))
        return registry_client_cancel_error (c, q->repo, q->what, err);
      if (r->sink_err)
        {
          *err = r->sink_err;
          r->sink_err = NULL;
          return -1;
        }
      if (r->over_limit)
        return kiln_error_make (err, 0, "registry '%s', repository '%s': %s: response larger than %s", c->domain,
                                q->repo, q->what, r->sink ? "the expected size" : "the limit");
      if (code == CURLE_OK && r->status == 401 && !reauthed)
        {
          reauthed = true;
          if (registry_client_authenticate (c, q, r, err) < 0)
            return -1;
          continue;
        }
      /* A 206 must start where we asked; anything else restarts cleanly by
       * skipping what we already have. */
      if (code == CURLE_OK && r->sink && r->status == 200 && from)
        log_debug ("registry %s: server ignored Range, skipping %llu bytes", c->domain, (unsigned long long) from);
      /* TLS spoken to a plain-HTTP server: no retry helps, the flag does. */
      if (code == CURLE_SSL_CONNECT_ERROR && strncmp (c->base, "https:", 6) == 0
          && strstr (errbuf, "wrong version number"))
        return kiln_error_make (err, 0, "registry '%s', repository '%s': %s: %s (the registry answers in plain "
                                "HTTP, not TLS: if that is intended, give --insecure-registry %s)", c->domain, q->repo,
                                q->what, errbuf, c->domain);
      bool retry = code != CURLE_OK || r->status == 408 || r->status == 429 || r->status >= 500;
      if (!retry)
        return 0;
      if (attempt >= c->retries)
        {
          if (code != CURLE_OK)
            {
              kiln_error_make (err, 0, "registry '%s', repository '%s': %s: %s (after %d attempts)", c->domain,
                               q->repo, q->what, errbuf[0] ? errbuf : curl_easy_strerror (code), attempt + 1);
              if (err && *err && code != CURLE_SSL_CONNECT_ERROR && code != CURLE_PEER_FAILED_VERIFICATION)
                (*err)->kind = KILN_ERROR_UNREACHABLE;
              return -1;
            }
          return 0;
        }
      log_warn ("registry %s, repository %s: %s: %s; retrying (%d/%d)", c->domain, q->repo, q->what,
                code != CURLE_OK ? (errbuf[0] ? errbuf : curl_easy_strerror (code)) : "server error", attempt + 1,
                c->retries);
      if (!registry_client_backoff_sleep (c, attempt, r->retry_after))
        return registry_client_cancel_error (c, q->repo, q->what, err);
      attempt++;
    }
}

static int
status_error (registry_client *c, const request *q, const http_resp *r, kiln_error **err)
{
  autofree char *ans = registry_client_describe_answer (r);
  const char *hint = r->status == 401 ? " (authentication failed)" : r->status == 403 ? " (access denied)" : "";
  int ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: %s%s", c->domain, q->repo, q->what, ans,
                             hint);
  if (r->status == 404 && err && *err)
    (*err)->kind = KILN_ERROR_NOT_FOUND;
  return ret;
}

int
registry_get_manifest (registry_client *c, const char *repo, const char *id, char **data, size_t *len,
                       char **content_type, char **digest, kiln_error **err)
{
  autofree char *url = xasprintf ("%s/v2/%s/manifests/%s", c->base, repo, id);
  autofree char *what = xasprintf ("GET manifest '%s'", id);
  autofree char *scope = xasprintf ("repository:%s:pull", repo);
  request q = { .method = "GET", .url = url, .accept = REGISTRY_MANIFEST_ACCEPT, .what = what, .repo = repo,
                .scope = scope, .upload_fd = -1, .follow = true };
  http_resp r = { 0 };
  r.body_max = REGISTRY_MANIFEST_MAX_SIZE;
  r.limit = -1;
  int ret = do_request (c, &q, &r, err);
  if (ret == 0 && r.status != 200)
    ret = status_error (c, &q, &r, err);
  if (ret == 0)
    {
      char d[DIGEST_STRING_SIZE];
      digest_buffer (r.body.buf, r.body.len, d);
      if (strncmp (id, "sha256:", 7) == 0 && strcmp (d, id) != 0)
        ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: content has digest %s", c->domain, repo,
                               what, d);
      else
        {
          *len = r.body.len;
          *data = strbuf_detach (&r.body, NULL);
          *content_type = r.content_type ? xstrdup (r.content_type) : NULL;
          *digest = xstrdup (d);
        }
    }
  registry_client_resp_release (&r);
  return ret;
}

int
registry_get_blob (registry_client *c, const char *repo, const char *digest, int64_t size, registry_sink sink,
                   void *ctx, kiln_error **err)
{
  autofree char *url = xasprintf ("%s/v2/%s/blobs/%s", c->base, repo, digest);
  autofree char *what = xasprintf ("GET blob %s", digest);
  autofree char *scope = xasprintf ("repository:%s:pull", repo);
  request q = { .method = "GET", .url = url, .what = what, .repo = repo, .scope = scope, .upload_fd = -1,
                .follow = true };
  autodigest digest_ctx *dg = digest_new ();
  http_resp r = { 0 };
  r.body_max = ERROR_BODY_MAX;
  r.sink = sink;
  r.sink_ctx = ctx;
  r.dg = dg;
  r.limit = size;
  int ret = 0;
  /* A transfer that ends early (cut connection) is retried from where it
   * stopped; do_request handles errors that curl reports. */
  for (int attempt = 0; ret == 0; attempt++)
    {
      ret = do_request (c, &q, &r, err);
      if (ret < 0)
        break;
      if (r.status != 200 && r.status != 206)
        {
          ret = status_error (c, &q, &r, err);
          break;
        }
      if (size < 0 || r.received == (uint64_t) size)
        break;
      if (attempt >= c->retries)
        {
          ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: got %llu of %lld bytes", c->domain,
                                 repo, what, (unsigned long long) r.received, (long long) size);
          break;
        }
      log_warn ("registry %s, repository %s: %s: short transfer (%llu of %lld bytes); resuming", c->domain, repo,
                what, (unsigned long long) r.received, (long long) size);
    }
  if (ret == 0)
    {
      char got[DIGEST_STRING_SIZE];
      digest_final (dg, got);
      if (strcmp (got, digest) != 0)
        ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: content has digest %s (corrupted)",
                               c->domain, repo, what, got);
    }
  registry_client_resp_release (&r);
  return ret;
}

/* ---- push ---- */

static request
push_request (const char *method, const char *url, const char *what, const char *repo, const char *scope)
{
  request q = { .method = method, .url = url, .what = what, .repo = repo, .scope = scope, .upload_fd = -1 };
  return q;
}

static int
head_blob (registry_client *c, const char *repo, const char *digest, const char *access, kiln_error **err)
{
  autofree char *url = xasprintf ("%s/v2/%s/blobs/%s", c->base, repo, digest);
  autofree char *what = xasprintf ("HEAD blob %s", digest);
  autofree char *scope = xasprintf ("repository:%s:%s", repo, access);
  request q = push_request ("HEAD", url, what, repo, scope);
  q.follow = true;
  http_resp r = { 0 };
  r.body_max = ERROR_BODY_MAX;
  r.limit = -1;
  int ret = do_request (c, &q, &r, err);
  if (ret == 0)
    {
      if (r.status == 200)
        ret = 1;
      else if (r.status != 404)
        ret = status_error (c, &q, &r, err);
    }
  registry_client_resp_release (&r);
  return ret;
}

int
registry_blob_exists (registry_client *c, const char *repo, const char *digest, kiln_error **err)
{
  return head_blob (c, repo, digest, "pull,push", err);
}

int
registry_blob_readable (registry_client *c, const char *repo, const char *digest, kiln_error **err)
{
  return head_blob (c, repo, digest, "pull", err);
}

int
registry_mount_blob (registry_client *c, const char *repo, const char *digest, const char *from, kiln_error **err)
{
  autofree char *scope = xasprintf ("repository:%s:pull,push repository:%s:pull", repo, from);
  char *e = curl_easy_escape (c->curl, from, 0);
  autofree char *url = xasprintf ("%s/v2/%s/blobs/uploads/?mount=%s&from=%s", c->base, repo, digest, e);
  curl_free (e);
  autofree char *what = xasprintf ("POST blob mount %s from '%s'", digest, from);
  request q = push_request ("POST", url, what, repo, scope);
  http_resp p = { 0 };
  p.body_max = ERROR_BODY_MAX;
  p.limit = -1;
  int ret = do_request (c, &q, &p, err);
  if (ret == 0 && p.status == 201)
    ret = 1;
  else if (ret == 0 && p.status != 202)
    ret = status_error (c, &q, &p, err);
  /* 202: the registry opened an upload session instead (it expires on its
   * own); the caller uploads through a new one. */
  registry_client_resp_release (&p);
  return ret;
}

/* An upload URL from a Location header, absolute, with "digest=" appended. */
static char *
upload_url (registry_client *c, const char *location, const char *digest)
{
  const char *sep = strchr (location, '?') ? "&" : "?";
  if (location[0] == '/')
    return xasprintf ("%s%s%sdigest=%s", c->base, location, sep, digest);
  return xasprintf ("%s%sdigest=%s", location, sep, digest);
}

#define CHUNK_SIZE (8 * 1024 * 1024)

/* Chunked upload: PATCH CHUNK_SIZE pieces (Content-Range), then PUT with
 * the digest and no body. For registries that refuse a monolithic PUT. */
static int
upload_chunked (registry_client *c, const char *repo, const char *digest, int64_t size, int fd, const char *scope,
                const char *location, kiln_error **err)
{
  autofree char *loc = location[0] == '/' ? xasprintf ("%s%s", c->base, location) : xstrdup (location);
  autofree char *what = xasprintf ("PATCH blob %s", digest);
  for (int64_t off = 0; off < size;)
    {
      int64_t n = size - off < CHUNK_SIZE ? size - off : CHUNK_SIZE;
      autofree char *range = xasprintf ("%lld-%lld", (long long) off, (long long) (off + n - 1));
      request q = push_request ("PATCH", loc, what, repo, scope);
      q.content_type = "application/octet-stream";
      q.upload_fd = fd;
      q.upload_offset = off;
      q.upload_size = n;
      q.content_range = range;
      http_resp r = { 0 };
      r.body_max = ERROR_BODY_MAX;
      r.limit = -1;
      int ret = do_request (c, &q, &r, err);
      if (ret == 0 && r.status != 202)
        ret = status_error (c, &q, &r, err);
      if (ret == 0 && r.location)
        {
          free (loc);
          loc = r.location[0] == '/' ? xasprintf ("%s%s", c->base, r.location) : xstrdup (r.location);
        }
      registry_client_resp_release (&r);
      if (ret < 0)
        return ret;
      off += n;
    }
  const char *sep = strchr (loc, '?') ? "&" : "?";
  autofree char *put = xasprintf ("%s%sdigest=%s", loc, sep, digest);
  autofree char *pwhat = xasprintf ("PUT blob %s (end of chunked upload)", digest);
  request q = push_request ("PUT", put, pwhat, repo, scope);
  http_resp r = { 0 };
  r.body_max = ERROR_BODY_MAX;
  r.limit = -1;
  int ret = do_request (c, &q, &r, err);
  if (ret == 0 && r.status != 201)
    ret = status_error (c, &q, &r, err);
  registry_client_resp_release (&r);
  return ret;
}

int
registry_push_blob (registry_client *c, const char *repo, const char *digest, int64_t size, int fd,
                    const char *mount_from, const char **how, kiln_error **err)
{
  int r = registry_blob_exists (c, repo, digest, err);
  if (r < 0)
    return r;
  if (r > 0)
    {
      if (how)
        *how = "exists";
      return 0;
    }
  autofree char *scope = mount_from ? xasprintf ("repository:%s:pull,push repository:%s:pull", repo, mount_from)
                                    : xasprintf ("repository:%s:pull,push", repo);
  autofree char *url = NULL;
  if (mount_from)
    {
      char *e = curl_easy_escape (c->curl, mount_from, 0);
      url = xasprintf ("%s/v2/%s/blobs/uploads/?mount=%s&from=%s", c->base, repo, digest, e);
      curl_free (e);
    }
  else
    url = xasprintf ("%s/v2/%s/blobs/uploads/", c->base, repo);
  autofree char *what = xasprintf ("POST blob upload %s", digest);
  int ret = 0;
  for (int attempt = 0;; attempt++)
    {
      request q = push_request ("POST", url, what, repo, scope);
      http_resp p = { 0 };
      p.body_max = ERROR_BODY_MAX;
      p.limit = -1;
      ret = do_request (c, &q, &p, err);
      if (ret == 0 && mount_from && p.status == 201)
        {
          registry_client_resp_release (&p);
          if (how)
            *how = "mounted";
          return 0;
        }
      if (ret == 0 && p.status != 202)
        ret = status_error (c, &q, &p, err);
      if (ret == 0 && !p.location)
        ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: HTTP 202 without a Location header",
                               c->domain, repo, what);
      autofree char *put = ret == 0 ? upload_url (c, p.location, digest) : NULL;
      registry_client_resp_release (&p);
      if (ret < 0)
        return ret;
      autofree char *pwhat = xasprintf ("PUT blob %s", digest);
      request u = push_request ("PUT", put, pwhat, repo, scope);
      u.content_type = "application/octet-stream";
      u.upload_fd = fd;
      u.upload_size = size;
      http_resp pr = { 0 };
      pr.body_max = ERROR_BODY_MAX;
      pr.limit = -1;
      ret = do_request (c, &u, &pr, err);
      if (ret == 0 && pr.status == 201)
        {
          registry_client_resp_release (&pr);
          break;
        }
      if (ret == 0 && pr.status == 413)
        {
          /* The registry (or a proxy in front) refuses large single
           * requests: upload in chunks through a new session. */
          registry_client_resp_release (&pr);
          log_info ("registry %s: monolithic upload refused (HTTP 413); uploading %s in chunks", c->domain, digest);
          autofree char *plain = xasprintf ("%s/v2/%s/blobs/uploads/", c->base, repo);
          request q2 = push_request ("POST", plain, what, repo, scope);
          http_resp p2 = { 0 };
          p2.body_max = ERROR_BODY_MAX;
          p2.limit = -1;
          ret = do_request (c, &q2, &p2, err);
          if (ret == 0 && p2.status != 202)
            ret = status_error (c, &q2, &p2, err);
          if (ret == 0 && !p2.location)
            ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: HTTP 202 without a Location header",
                                   c->domain, repo, what);
          if (ret == 0)
            ret = upload_chunked (c, repo, digest, size, fd, scope, p2.location, err);
          registry_client_resp_release (&p2);
          if (ret < 0)
            return ret;
          break;
        }
      /* A failed PUT invalidates the upload session; start a new one. */
      bool retry = ret == 0 && (pr.status >= 500 || pr.status == 429) && attempt < c->retries;
      if (ret == 0 && !retry)
        ret = status_error (c, &u, &pr, err);
      registry_client_resp_release (&pr);
      if (!retry)
        return ret;
      log_warn ("registry %s, repository %s: %s failed; restarting the upload", c->domain, repo, pwhat);
    }
  if (how)
    *how = "uploaded";
  return 0;
}

int
registry_check_push (registry_client *c, const char *repo, kiln_error **err)
{
  autofree char *url = xasprintf ("%s/v2/%s/blobs/uploads/", c->base, repo);
  autofree char *scope = xasprintf ("repository:%s:pull,push", repo);
  request q = push_request ("POST", url, "push access check (POST blob upload)", repo, scope);
  http_resp r = { 0 };
  r.body_max = ERROR_BODY_MAX;
  r.limit = -1;
  int ret = do_request (c, &q, &r, err);
  if (ret == 0 && r.status != 202)
    ret = status_error (c, &q, &r, err);
  autofree char *loc = ret == 0 && r.location ? (r.location[0] == '/' ? xasprintf ("%s%s", c->base, r.location)
                                                                      : xstrdup (r.location))
                                              : NULL;
  registry_client_resp_release (&r);
  if (loc)
    {
      /* Cancel the upload session; whether the registry agrees does not
       * matter (it expires them anyway). */
      request d = push_request ("DELETE", loc, "cancel the push access check's upload", repo, scope);
      http_resp dr = { 0 };
      dr.body_max = ERROR_BODY_MAX;
      dr.limit = -1;
      autoerror kiln_error *ignored = NULL;
      do_request (c, &d, &dr, &ignored);
      registry_client_resp_release (&dr);
    }
  return ret;
}

int
registry_put_manifest (registry_client *c, const char *repo, const char *tag_or_digest, const char *data,
                       size_t len, const char *media_type, kiln_error **err)
{
  autofree char *url = xasprintf ("%s/v2/%s/manifests/%s", c->base, repo, tag_or_digest);
  autofree char *what = xasprintf ("PUT manifest '%s'", tag_or_digest);
  autofree char *scope = xasprintf ("repository:%s:pull,push", repo);
  request q = push_request ("PUT", url, what, repo, scope);
  q.content_type = media_type;
  q.body = data;
  q.body_len = len;
  http_resp r = { 0 };
  r.body_max = ERROR_BODY_MAX;
  r.limit = -1;
  int ret = do_request (c, &q, &r, err);
  if (ret == 0 && r.status != 201 && r.status != 200)
    ret = status_error (c, &q, &r, err);
  registry_client_resp_release (&r);
  return ret;
}
