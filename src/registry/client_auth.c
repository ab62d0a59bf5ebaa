/* client_auth.c - the registry client's authentication (see client.h):
 * credentials (auth files, docker-credential helpers), Basic headers and the
 * Bearer token flow, answering a 401 challenge. Requests, retries and
 * transfers are in client.c. */
#include "registry/client.h"
#include "registry/client_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "registry/authfile.h"
#include "registry/challenge.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"

extern char **environ;

#define TOKEN_BODY_MAX (1024 * 1024)

/* ---- credentials ---- */

static int
run_helper (const char *helper, const char *server, registry_credential *out, kiln_error **err)
{
  autofree char *prog = xasprintf ("docker-credential-%s", helper);
  int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
  if (pipe2 (in, O_CLOEXEC) < 0 || pipe2 (outp, O_CLOEXEC) < 0)
    {
      int e = errno;
      close (in[0]), close (in[1]);
      return kiln_error_make (err, e, "pipe");
    }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 1);
  char *argv[] = { prog, (char *) "get", NULL };
  pid_t pid;
  int rc = posix_spawnp (&pid, prog, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (in[0]);
  close (outp[1]);
  if (rc != 0)
    {
      close (in[1]);
      close (outp[0]);
      return kiln_error_make (err, rc, "running credential helper '%s'", prog);
    }
  /* The helper reads the server URL on stdin. */
  sigset_t set, old;
  sigemptyset (&set);
  sigaddset (&set, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &set, &old);
  kiln_error *werr = NULL;
  (void) fs_write_all (in[1], server, strlen (server), &werr);
  kiln_error_free (werr);
  close (in[1]);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  autofree char *buf = NULL;
  size_t len = 0;
  kiln_error *rerr = NULL;
  int r = fs_read_fd (outp[0], 1024 * 1024, &buf, &len, &rerr);
  close (outp[0]);
  int status = 0;
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (r < 0)
    {
      kiln_error_free (rerr);
      return kiln_error_make (err, 0, "credential helper '%s': reading its output failed", prog);
    }
  int ret;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      /* "credentials not found" is not an error: go anonymous. */
      if (len && strstr (buf, "not found"))
        ret = 0;
      else
        ret = kiln_error_make (err, 0, "credential helper '%s' failed (exit status %d)", prog,
                               WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
    }
  else
    ret = registry_credhelper_parse (buf, len, helper, out, err) < 0 ? -1 : 1;
  if (buf)
    explicit_bzero (buf, len);
  return ret;
}

static int
load_credentials (registry_client *c, const char *repo, kiln_error **err)
{
  if (c->cred_loaded)
    return 0;
  c->cred_loaded = true;
  autofree char *p1 = getenv ("REGISTRY_AUTH_FILE") ? xstrdup (getenv ("REGISTRY_AUTH_FILE")) : NULL;
  autofree char *p2 = getenv ("XDG_RUNTIME_DIR") ? xasprintf ("%s/containers/auth.json", getenv ("XDG_RUNTIME_DIR"))
                                                 : NULL;
  autofree char *p3 = getenv ("DOCKER_CONFIG") ? xasprintf ("%s/config.json", getenv ("DOCKER_CONFIG"))
                      : getenv ("HOME")        ? xasprintf ("%s/.docker/config.json", getenv ("HOME"))
                                               : NULL;
  const char *paths[] = { p1, p2, p3 };
  for (size_t i = 0; i < 3; i++)
    {
      if (!paths[i])
        continue;
      autofree char *data = NULL;
      size_t len = 0;
      kiln_error *rerr = NULL;
      if (fs_read_file_at (AT_FDCWD, paths[i], 4 * 1024 * 1024, &data, &len, &rerr) < 0)
        {
          bool missing = rerr->status == ENOENT;
          if (missing)
            {
              kiln_error_free (rerr);
              continue;
            }
          *err = rerr;
          return kiln_error_wrap (err, "reading registry credentials");
        }
      autoauthfile registry_authfile *f = NULL;
      int r = registry_authfile_parse (data, len, paths[i], &f, err);
      explicit_bzero (data, len);
      if (r < 0)
        return r;
      registry_credential cred;
      if (registry_authfile_lookup (f, c->domain, repo, &cred) == 0)
        continue;
      if (cred.helper)
        {
          const char *server = strcmp (c->domain, "docker.io") == 0 ? "https://index.docker.io/v1/" : c->domain;
          autofree char *helper = xstrdup (cred.helper);
          registry_credential_clear (&cred);
          r = run_helper (helper, server, &c->cred, err);
          if (r < 0)
            return kiln_error_wrap (err, "credentials for '%s' from '%s'", c->domain, paths[i]);
          log_debug ("registry %s: credentials from docker-credential-%s", c->domain, helper);
          return 0;
        }
      c->cred = cred;
      log_debug ("registry %s: credentials from '%s'", c->domain, paths[i]);
      return 0;
    }
  return 0;
}

static char *
base64 (const char *s)
{
  size_t n = strlen (s);
  char *out = xmalloc (4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock ((unsigned char *) out, (const unsigned char *) s, (int) n);
  return out;
}

static char *
basic_header (const registry_credential *cred)
{
  autofree char *up = xasprintf ("%s:%s", cred->username ? cred->username : "", cred->password ? cred->password : "");
  autofree char *b = base64 (up);
  char *h = xasprintf ("Authorization: Basic %s", b);
  explicit_bzero (up, strlen (up));
  explicit_bzero (b, strlen (b));
  return h;
}

/* A token goes into a header: refuse anything that could split it. */
static bool
token_ok (const char *t)
{
  if (!t || !*t || strlen (t) > 64 * 1024)
    return false;
  for (; *t; t++)
    if ((unsigned char) *t <= 0x20 || (unsigned char) *t >= 0x7f)
      return false;
  return true;
}

/* ---- token flow ---- */

/* The token request's GET URL: the realm with service and scope
 * parameters (one scope= per space-separated scope). */
static void
token_url (registry_client *c, const request *q, const char *realm, const char *service, strbuf *url)
{
  strbuf_addf (url, "%s%s", realm, strchr (realm, '?') ? "&" : "?");
  if (service)
    {
      char *e = curl_easy_escape (c->curl, service, 0);
      strbuf_addf (url, "service=%s&", e);
      curl_free (e);
    }
  const char *sc = q->scope;
  while (*sc)
    {
      size_t n = strcspn (sc, " ");
      char *e = curl_easy_escape (c->curl, sc, (int) n);
      strbuf_addf (url, "%sscope=%s", sc == q->scope ? "" : "&", e);
      curl_free (e);
      sc += n;
      while (*sc == ' ')
        sc++;
    }
}

/* OAuth2 refresh-token grant (Docker's identitytoken): the form to POST
 * to the realm. It holds a secret: the caller wipes it. */
static void
token_refresh_form (registry_client *c, const request *q, const char *service, strbuf *form)
{
  char *rt = curl_easy_escape (c->curl, c->cred.identity_token, 0);
  char *sv = curl_easy_escape (c->curl, service ? service : "", 0);
  strbuf_addf (form, "grant_type=refresh_token&client_id=kiln&service=%s&refresh_token=%s", sv, rt);
  explicit_bzero (rt, strlen (rt));
  curl_free (rt);
  curl_free (sv);
  const char *scp = q->scope;
  while (*scp)
    {
      size_t n = strcspn (scp, " ");
      char *e2 = curl_easy_escape (c->curl, scp, (int) n);
      strbuf_addf (form, "&scope=%s", e2);
      curl_free (e2);
      scp += n;
      while (*scp == ' ')
        scp++;
    }
}

/* Take the token from the token server's 200 answer: it becomes the
 * client's Authorization header, for the request's scope, until it is
 * about to expire. */
static int
token_accept (registry_client *c, const request *q, const char *realm, const http_resp *r, kiln_error **err)
{
  autojson json_value *v = NULL;
  if (json_parse (r->body.buf, r->body.len, TOKEN_BODY_MAX, &v, NULL) < 0 || !json_is_object (v))
    return kiln_error_make (err, 0, "registry '%s': token server '%.200s' answered with invalid JSON", c->domain,
                            realm);
  const char *tok = json_get_string (v, "token");
  if (!tok || !*tok)
    tok = json_get_string (v, "access_token");
  if (!token_ok (tok))
    return kiln_error_make (err, 0, "registry '%s': token server '%.200s' answered without a usable token",
                            c->domain, realm);
  xfree_secret (c->auth_header);
  c->auth_header = xasprintf ("Authorization: Bearer %s", tok);
  /* The spec's default lifetime is 60 s; renew 10 s early so a
   * token does not expire between check and use. */
  int64_t ttl = 60;
  if (json_get_int64 (v, "expires_in", &ttl, NULL) < 0 || ttl < 20)
    ttl = ttl < 20 ? 20 : 60;
  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  c->auth_expires = now.tv_sec + (time_t) ttl - 10;
  free (c->auth_scope);
  c->auth_scope = xstrdup (q->scope);
  return 0;
}

static int
fetch_token (registry_client *c, const request *q, const registry_challenge *ch, kiln_error **err)
{
  const char *realm = registry_challenge_param (ch, "realm");
  const char *service = registry_challenge_param (ch, "service");
  if (!realm || (strncmp (realm, "https://", 8) != 0 && strncmp (realm, "http://", 7) != 0))
    return kiln_error_make (err, 0, "registry '%s', repository '%s': %s: Bearer challenge without a valid realm",
                            c->domain, q->repo, q->what);
  autostrbuf strbuf url = STRBUF_INIT;
  token_url (c, q, realm, service, &url);
  autofree char *auth = NULL;
  autostrbuf strbuf form = STRBUF_INIT;
  request tq = { .method = "GET", .url = url.buf, .what = "token request", .repo = q->repo, .scope = q->scope,
                 .upload_fd = -1, .follow = true };
  if (c->cred.identity_token)
    {
      token_refresh_form (c, q, service, &form);
      tq.method = "POST";
      tq.url = realm;
      tq.content_type = "application/x-www-form-urlencoded";
      tq.body = form.buf;
      tq.body_len = form.len;
    }
  else if (c->cred.username || c->cred.password)
    auth = basic_header (&c->cred);
  http_resp r = { 0 };
  r.body_max = TOKEN_BODY_MAX;
  r.limit = -1;
  char errbuf[CURL_ERROR_SIZE];
  CURLcode code;
  int ret = 0;
  for (int attempt = 0;; attempt++)
    {
      registry_client_perform_once (c, &tq, auth, 0, &r, &code, errbuf);
      bool retry = code != CURLE_OK || r.status == 429 || r.status >= 500;
      if (!retry || attempt >= c->retries)
        break;
      if (!registry_client_backoff_sleep (c, attempt, r.retry_after))
        break;
    }
  if (auth)
    explicit_bzero (auth, strlen (auth));
  if (form.len)
    explicit_bzero (form.buf, form.len);
  if (registry_client_cancelled (c))
    ret = registry_client_cancel_error (c, q->repo, q->what, err);
  else if (code != CURLE_OK)
    ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: token request to '%.200s' failed: %s",
                           c->domain, q->repo, q->what, realm, errbuf[0] ? errbuf : curl_easy_strerror (code));
  else if (r.status != 200)
    {
      autofree char *ans = registry_client_describe_answer (&r);
      ret = kiln_error_make (err, 0, "registry '%s', repository '%s': %s: token server '%.200s' answered %s%s",
                             c->domain, q->repo, q->what, realm, ans,
                             r.status == 401 ? " (wrong or missing credentials)" : "");
    }
  else
    ret = token_accept (c, q, realm, &r, err);
  if (r.body.len)
    explicit_bzero (r.body.buf, r.body.len);
  registry_client_resp_release (&r);
  return ret;
}

/* Answer a 401 challenge; 0 when new credentials are ready to retry with. */
int
registry_client_authenticate (registry_client *c, const request *q, const http_resp *r, kiln_error **err)
{
  autochallenges registry_challenges *chs = NULL;
  if (!r->www_auth)
    return kiln_error_make (err, 0, "registry '%s', repository '%s': %s: HTTP 401 without a WWW-Authenticate header",
                            c->domain, q->repo, q->what);
  if (registry_challenges_parse (r->www_auth, &chs, err) < 0)
    return kiln_error_wrap (err, "registry '%s', repository '%s': %s", c->domain, q->repo, q->what);
  if (load_credentials (c, q->repo, err) < 0)
    return -1;
  const registry_challenge *b = registry_challenges_find (chs, "bearer");
  if (b)
    return fetch_token (c, q, b, err);
  if (registry_challenges_find (chs, "basic"))
    {
      if (!c->cred.username && !c->cred.password)
        return kiln_error_make (err, 0,
                                "registry '%s', repository '%s': %s: authentication required and no credentials "
                                "found (config.json, auth.json or a credential helper)",
                                c->domain, q->repo, q->what);
      xfree_secret (c->auth_header);
      c->auth_header = basic_header (&c->cred);
      c->auth_expires = 0;
      free (c->auth_scope);
      c->auth_scope = NULL;
      return 0;
    }
  return kiln_error_make (err, 0, "registry '%s', repository '%s': %s: unsupported authentication scheme '%.40s'",
                          c->domain, q->repo, q->what, chs->items[0].scheme);
}
