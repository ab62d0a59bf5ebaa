/* challenge.h - WWW-Authenticate header parsing (RFC 7235) for registry auth.
 *
 *   Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"
 *   Basic realm="Registry Realm"
 *
 * A header may carry several challenges separated by commas; parameters are
 * token=token or token="quoted \"string\"". Scheme and parameter names are
 * case-insensitive and stored lower-cased; values are kept verbatim. A token68
 * challenge (Negotiate abc==) is accepted and kept as the "token68" value.
 * Untrusted input: at most 16 challenges with 32 parameters each, headers up to
 * 8 KiB; anything malformed is an error naming the offset.
 */
#ifndef KILN_REGISTRY_CHALLENGE_H
#define KILN_REGISTRY_CHALLENGE_H

#include <stddef.h>
#include "util/error.h"

typedef struct registry_param
{
  char *name; /* lower-case */
  char *value;
} registry_param;

typedef struct registry_challenge
{
  char *scheme; /* lower-case: "bearer", "basic", ... */
  registry_param *params;
  size_t n_params;
} registry_challenge;

typedef struct registry_challenges
{
  registry_challenge *items;
  size_t n;
} registry_challenges;

int registry_challenges_parse (const char *header, registry_challenges **out, kiln_error **err);
void registry_challenges_free (registry_challenges *c);
void cleanup_registry_challengesp (registry_challenges **c);
#define autochallenges __attribute__ ((cleanup (cleanup_registry_challengesp)))

/* The first challenge with this (lower-case) scheme, or NULL. */
const registry_challenge *registry_challenges_find (const registry_challenges *c, const char *scheme);
/* Value of a parameter (name compared case-insensitively), or NULL. */
const char *registry_challenge_param (const registry_challenge *c, const char *name);

#endif
