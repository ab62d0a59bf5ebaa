/* client_internal.h - what the files of the registry client share. PRIVATE
 * to src/registry/client.c and src/registry/client_auth.c: nothing else
 * includes it; the client's API is client.h.
 *
 * Where things are:
 *   client.c       clients (new, clone, free), the response callbacks,
 *                  requests (one attempt, retries with backoff, Range
 *                  resume), manifests and blobs, the push primitives
 *   client_auth.c  credentials (auth files, credential helpers), Basic
 *                  headers, the Bearer token flow, answering a 401
 *
 * The functions declared here are defined in client.c, except
 * registry_client_authenticate (client_auth.c).
 */
#ifndef KILN_REGISTRY_CLIENT_INTERNAL_H
#define KILN_REGISTRY_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "registry/authfile.h"
#include "registry/client.h"
#include "registry/transfer.h"
#include "util/digest.h"
#include "util/error.h"
#include "util/strbuf.h"

struct registry_client
{
  CURL *curl;
  transfer_engine *engine; /* shared with clones: one connection cache */
  char *domain;
  char *base; /* "https://host:port" */
  bool tls_verify;
  char *ca_file;
  char *client_cert; /* mutual TLS: PEM certificate and key, or NULL */
  char *client_key;
  int retries;
  long connect_timeout_s;
  long stall_timeout_s;
  const volatile sig_atomic_t *cancel;
  struct blobprogress *progress;
  int progress_id;        /* upload progress line, -1 none */
  int64_t upload_offset;  /* of the request running (chunked uploads) */
  char *auth_header; /* "Authorization: ..." or NULL; a secret */
  char *auth_scope;  /* scope auth_header was obtained for */
  time_t auth_expires; /* CLOCK_MONOTONIC seconds after which the token is dropped; 0 = never */
  bool cred_loaded;
  registry_credential cred;
};

typedef struct http_resp
{
  CURL *curl;
  long status;
  strbuf body;
  size_t body_max;
  bool body_truncated;
  char *content_type;
  char *www_auth;
  char *retry_after;
  char *content_range;
  char *location;
  /* Streaming a 2xx body: */
  registry_sink sink;
  void *sink_ctx;
  kiln_error *sink_err;
  digest_ctx *dg;
  uint64_t range_from; /* Range start asked for in this attempt */
  bool started;        /* body data seen in this attempt */
  uint64_t skip;     /* bytes to drop (already received; server ignored Range) */
  uint64_t received; /* bytes hashed so far (across attempts) */
  int64_t limit;     /* abort when received would exceed it; <0 none */
  bool over_limit;
} http_resp;

typedef struct request
{
  const char *method; /* "GET", "HEAD" */
  const char *url;
  const char *accept; /* NULL for none */
  const char *what;   /* "GET manifest 'latest'" for errors */
  const char *repo;
  const char *scope;  /* "repository:REPO:pull", several separated by ' ' */
  const char *content_range; /* "START-END" for PATCH, or NULL */
  const char *content_type; /* request body type, or NULL */
  const char *body;         /* POST/PUT body from memory (may be NULL with len 0) */
  size_t body_len;
  int upload_fd;            /* PUT/PATCH body streamed from this fd; -1 if none */
  int64_t upload_size;      /* bytes from upload_offset */
  int64_t upload_offset;
  bool follow;              /* follow redirects */
} request;

/* Free a response's headers and body and drop its sink error. */
void registry_client_resp_release (http_resp *r);

/* "HTTP 404 MANIFEST_UNKNOWN: manifest unknown" from a registry error body
 * (the caller frees it). */
char *registry_client_describe_answer (const http_resp *r);

/* True once the client's cancel flag is set (a signal arrived). */
bool registry_client_cancelled (const registry_client *c);

/* The "interrupted by SIGINT" error of a request; returns -1. */
int registry_client_cancel_error (registry_client *c, const char *repo, const char *what, kiln_error **err);

/* One attempt of q on the client's handle, with auth (an "Authorization:"
 * header or NULL) and a Range from range_from (0: none); *code is curl's
 * result, errbuf (CURL_ERROR_SIZE) its message. Always returns 0. */
int registry_client_perform_once (registry_client *c, const request *q, const char *auth, uint64_t range_from,
                                  http_resp *r, CURLcode *code, char *errbuf);

/* Sleep before retry attempt+1; false when interrupted meanwhile. */
bool registry_client_backoff_sleep (const registry_client *c, int attempt, const char *retry_after);

/* Answer a 401 challenge; 0 when new credentials are ready to retry with
 * (client_auth.c). */
int registry_client_authenticate (registry_client *c, const request *q, const http_resp *r, kiln_error **err);

#endif /* KILN_REGISTRY_CLIENT_INTERNAL_H */
