/* reference.h - image references in Docker's grammar (distribution/reference).
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path
 *   domain    := host [ ":" port ]      host: DNS name, IPv4, "[" IPv6 "]"
 *   path      := component ( "/" component )*
 *   component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
 *   digest    := "sha256:" 64 lowercase hex (the only algorithm kiln accepts)
 *
 * Normalisation follows `docker pull`: the first "/"-separated component is a
 * domain only if it contains "." or ":", or is "localhost" (and has no
 * upper-case letters); otherwise the domain is "docker.io". "index.docker.io"
 * becomes "docker.io"; a one-component Docker Hub path gets "library/". A
 * reference without tag and digest gets the tag "latest". The name (domain +
 * "/" + path) is at most 255 characters; a 64-hex path is rejected (it would
 * be an image ID, not a name).
 *
 * Errors read "invalid reference 'REF': WHY".
 */
#ifndef KILN_REGISTRY_REFERENCE_H
#define KILN_REGISTRY_REFERENCE_H

#include <stdbool.h>
#include "util/error.h"

#define REGISTRY_DOCKER_HUB "docker.io"
/* Where Docker Hub's API is actually served. */
#define REGISTRY_DOCKER_HUB_API "registry-1.docker.io"
#define REGISTRY_NAME_MAX 255
#define REGISTRY_TAG_MAX 128

typedef struct registry_ref
{
  char *domain; /* "docker.io", "localhost:5000", "[::1]:5000", "ghcr.io" */
  char *path;   /* "library/busybox", "org/app" */
  char *tag;    /* "latest" when neither tag nor digest was given; NULL if only a digest */
  char *digest; /* "sha256:<hex>" or NULL */
} registry_ref;

/* Parse and normalise s. *out is owned by the caller (registry_ref_free). */
int registry_ref_parse (const char *s, registry_ref **out, kiln_error **err);
void registry_ref_free (registry_ref *ref);
void cleanup_registry_refp (registry_ref **ref);
#define autoref __attribute__ ((cleanup (cleanup_registry_refp)))

registry_ref *registry_ref_dup (const registry_ref *ref);

/* Fully qualified form: "docker.io/library/busybox:latest",
 * "localhost:5000/a@sha256:..", "host/a:t@sha256:..". Caller frees. */
char *registry_ref_string (const registry_ref *ref);
/* "DOMAIN/PATH" without tag or digest. Caller frees. */
char *registry_ref_name (const registry_ref *ref);
/* The form Docker prints: "busybox:latest", "user/app:1", "ghcr.io/a/b:t". */
char *registry_ref_familiar (const registry_ref *ref);

/* Host (and port) to contact for domain: "registry-1.docker.io" for
 * "docker.io", else the domain itself. */
const char *registry_domain_api_host (const char *domain);
/* What the manifest request names: the digest if present, else the tag. */
const char *registry_ref_manifest_id (const registry_ref *ref);

/* Validate pieces on their own (used for tags given separately, e.g. the
 * ":TAG" of an OCI layout argument). */
bool registry_tag_valid (const char *tag);
bool registry_path_valid (const char *path);
/* Domain check: DNS name / IPv4 / bracketed IPv6, optional numeric port. */
bool registry_domain_valid (const char *domain);

#endif
