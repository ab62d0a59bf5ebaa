/* client.h - OCI distribution HTTP client for one registry (libcurl).
 *
 * One client talks to one registry domain and keeps one curl handle, so
 * connections (and TLS sessions) are reused across requests. Auth is handled
 * inside: a 401 is answered from the WWW-Authenticate challenge (Basic with
 * stored credentials, or the Bearer token flow with scope
 * "repository:REPO:ACTIONS"), the token is cached per scope and fetched again
 * on 401. Credentials come from $REGISTRY_AUTH_FILE,
 * ${XDG_RUNTIME_DIR}/containers/auth.json, $DOCKER_CONFIG/config.json or
 * ~/.docker/config.json (first file with an entry for the registry), through
 * docker-credential-NAME when the file names a helper.
 *
 * Retries (opts->retries, default 4) with exponential backoff and jitter on
 * connection errors, 408, 429 and 5xx, honouring Retry-After; never on other
 * 4xx. A blob download cut mid-way resumes with Range from the bytes already
 * verified (or skips them if the server answers 200).
 *
 * Errors name the registry, the repository, the operation and the server's
 * answer: "registry 'localhost:5000', repository 'a/b': GET manifest 'latest':
 * HTTP 404 MANIFEST_UNKNOWN: manifest unknown". No credential or token is
 * ever put into an error or a log line.
 */
#ifndef KILN_REGISTRY_CLIENT_H
#define KILN_REGISTRY_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/error.h"

typedef struct registry_options
{
  char **insecure_registries; /* plain HTTP for these domains */
  bool insecure;              /* plain HTTP for every registry */
  bool skip_tls_verify;       /* HTTPS without certificate verification */
  char **skip_tls_verify_registries; /* ... for these domains only */
  char **registry_certs;      /* "DOMAIN=CA.pem" entries */
  char **registry_client_certs; /* "DOMAIN=CERT.pem,KEY.pem" entries: mutual TLS */
  bool mirrors_only;          /* a reference mirrors serve is not pulled from its own registry
                               * (kaniko's --skip-default-registry-fallback; store_fetch_image_mirrored) */
  int retries;                /* attempts after the first; <0 = default (4) */
  long connect_timeout_s;     /* 0 = default (30) */
  long stall_timeout_s;       /* abort a transfer stalled this long; 0 = default (60) */
  /* Non-zero (a signal number) stops every transfer and backoff wait with
   * an "interrupted" error; NULL: never. See cancel.h. */
  const volatile sig_atomic_t *cancel;
  /* Per-blob progress display for pull and push (blobprogress.h); NULL:
   * plain log lines. */
  struct blobprogress *progress;
} registry_options;

typedef struct registry_client registry_client;

int registry_client_new (const registry_options *opts, const char *domain, registry_client **out,
                         kiln_error **err);
void registry_client_free (registry_client *c);
/* A second client for the same registry with its own connection, sharing
 * nothing mutable (credentials and the current token are copied), for
 * transfers on another thread. */
registry_client *registry_client_clone (const registry_client *c);
void cleanup_registry_clientp (registry_client **c);
#define autoclient __attribute__ ((cleanup (cleanup_registry_clientp)))

/* Receives blob data as it arrives (already counted in the running digest);
 * a negative return aborts the transfer with that error. */
typedef int (*registry_sink) (void *ctx, const void *data, size_t len, kiln_error **err);

/* GET a manifest (tag or digest) with the Accept list of every supported
 * kind. *data (NUL-terminated), *content_type and *digest (sha256 of the
 * bytes) are malloc'd. When id is a digest, the bytes must hash to it. */
int registry_get_manifest (registry_client *c, const char *repo, const char *id, char **data, size_t *len,
                           char **content_type, char **digest, kiln_error **err);

/* GET a blob, stream it to sink and verify size and digest as bytes arrive;
 * a mismatch (or more bytes than size) is an error after which the caller
 * must discard what the sink received. size < 0 means unknown. */
int registry_get_blob (registry_client *c, const char *repo, const char *digest, int64_t size,
                       registry_sink sink, void *ctx, kiln_error **err);

/* HEAD a blob: 1 if the registry has it, 0 if not (404). */
int registry_blob_exists (registry_client *c, const char *repo, const char *digest, kiln_error **err);
/* The same with a pull-only token: for a repository kiln only reads. */
int registry_blob_readable (registry_client *c, const char *repo, const char *digest, kiln_error **err);

/* Cross-repository mount of digest from repository from (same registry)
 * into repo: 1 mounted, 0 the registry would not (the blob must be
 * uploaded), negative on error. */
int registry_mount_blob (registry_client *c, const char *repo, const char *digest, const char *from,
                         kiln_error **err);

/* Upload a blob unless it is there: HEAD; then, if mount_from (another
 * repository of the same registry) is given, a cross-repository mount; else
 * POST + monolithic PUT streamed from fd (read from offset 0, size bytes),
 * retried from the start on failure. *how (may be NULL) gets "exists",
 * "mounted" or "uploaded". */
int registry_push_blob (registry_client *c, const char *repo, const char *digest, int64_t size, int fd,
                        const char *mount_from, const char **how, kiln_error **err);

/* PUT a manifest under tag_or_digest with its media type; the registry's
 * answer must name the same digest if it gives one. */
int registry_put_manifest (registry_client *c, const char *repo, const char *tag_or_digest, const char *data,
                           size_t len, const char *media_type, kiln_error **err);

/* Whether a push to repo would be allowed, checked before a build as
 * kaniko does (go-containerregistry's CheckPushPermission): with a token of
 * push scope a blob upload is started (POST) and at once cancelled
 * (DELETE). The error names the registry, the repository and the answer
 * (authentication failed, access denied, not found) or the transport
 * failure (unreachable, TLS). */
int registry_check_push (registry_client *c, const char *repo, kiln_error **err);

/* The progress display from the options (NULL if none). */
struct blobprogress *registry_client_progress (const registry_client *c);
/* Report the bytes of the blob uploads of this client to progress line id
 * (blobprogress_begin); -1 stops. */
void registry_client_set_upload_progress (registry_client *c, int id);

/* The scheme + host the client uses ("https://localhost:5000"). */
const char *registry_client_base_url (const registry_client *c);

#endif
