/* authfile.h - registry credentials from Docker's config.json and podman's
 * auth.json, and the docker-credential-helpers "get" answer.
 *
 * Formats (both files share them):
 *   { "auths": { "KEY": { "auth": base64("user:pass") }            // or
 *                "KEY": { "username": "u", "password": "p" }        // or
 *                "KEY": { "identitytoken": "refresh token" } },
 *     "credHelpers": { "HOST": "NAME" },     // run docker-credential-NAME
 *     "credsStore": "NAME" }                 // helper for every host
 * KEY is Docker's "https://index.docker.io/v1/", "http://host:5000",
 * "host:5000", or podman's "host/namespace/repo" (more specific wins).
 * Docker Hub aliases (index.docker.io, registry-1.docker.io, docker.io) are
 * one host. Lookup order, as Docker: credHelpers[host], then auths, then
 * credsStore.
 *
 * Secrets never appear in error messages (they name the key and field only);
 * memory holding them is cleared before it is freed.
 */
#ifndef KILN_REGISTRY_AUTHFILE_H
#define KILN_REGISTRY_AUTHFILE_H

#include <stddef.h>
#include "util/error.h"

typedef struct registry_credential
{
  char *username;       /* NULL if none */
  char *password;       /* NULL if none */
  char *identity_token; /* OAuth2 refresh token for the token endpoint; NULL if none */
  char *helper;         /* set instead: run docker-credential-HELPER get */
} registry_credential;

typedef struct registry_authfile registry_authfile;

/* Parse a config.json / auth.json; source names the file in errors. */
int registry_authfile_parse (const char *data, size_t len, const char *source, registry_authfile **out,
                             kiln_error **err);
void registry_authfile_free (registry_authfile *f);
void cleanup_registry_authfilep (registry_authfile **f);
#define autoauthfile __attribute__ ((cleanup (cleanup_registry_authfilep)))

/* Find credentials for domain (a reference's domain, e.g. "docker.io",
 * "localhost:5000") and repository path (may be NULL). Returns 1 and fills
 * *out when found, 0 when the file has nothing for that registry. */
int registry_authfile_lookup (const registry_authfile *f, const char *domain, const char *path,
                              registry_credential *out);

/* Parse the JSON a credential helper prints for "get":
 * {"ServerURL":"...","Username":"u","Secret":"s"}; Username "<token>" means
 * Secret is an identity token. */
int registry_credhelper_parse (const char *data, size_t len, const char *helper, registry_credential *out,
                               kiln_error **err);

/* Clear and free the members (not the struct itself). */
void registry_credential_clear (registry_credential *c);

/* Canonical host for a Docker config key or a domain: strips "http(s)://"
 * and (for URL keys) the path; Docker Hub aliases become "docker.io".
 * Caller frees. */
char *registry_auth_key_normalize (const char *key);

#endif
