/* hash.h - FNV-1a, the hash of kiln's in-memory hash tables.
 *
 * Tables keyed by paths and names (the overlay model's string sets, the
 * COPY change list, the layer index builder) need a fast, deterministic,
 * dependency-free hash; nothing is stored or sent, so its value is never
 * part of an output. 64-bit FNV-1a: callers that keep a size_t get its low
 * bits, which are the same as 32-bit arithmetic would give.
 */
#ifndef KILN_UTIL_HASH_H
#define KILN_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Not FNV's published offset basis (14695981039346656037: this is it with
 * the last digit lost), but the value every table has always used: any
 * nonzero start hashes as well, and keeping it keeps every table's layout
 * as it was. */
#define HASH_FNV1A_OFFSET 1469598103934665603ULL
#define HASH_FNV1A_PRIME 1099511628211ULL

/* Continue hash h (start with HASH_FNV1A_OFFSET) over len bytes of data, so
 * a key made of several parts is hashed without joining them. */
static inline uint64_t
hash_fnv1a (uint64_t h, const void *data, size_t len)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * HASH_FNV1A_PRIME;
  return h;
}

/* The hash of a NUL-terminated string (without the NUL). */
static inline uint64_t
hash_fnv1a_str (const char *s)
{
  uint64_t h = HASH_FNV1A_OFFSET;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * HASH_FNV1A_PRIME;
  return h;
}

#endif
