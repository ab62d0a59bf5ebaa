/* units.h - durations and byte sizes: parsing flags, formatting progress.
 *
 * Durations use Go's time.ParseDuration syntax (kaniko's flags such as
 * --cache-ttl=336h come from Go): a sequence of decimal numbers with optional
 * fraction and a unit each, "ns", "us"/"µs"/"μs", "ms", "s", "m", "h", with an
 * optional leading sign: "336h", "1h30m", "1.5s", "-2ms". A bare "0" is the
 * only number allowed without a unit. The result is in nanoseconds (int64,
 * about 292 years); anything larger is an overflow error.
 *
 * Sizes follow docker's units package: "512", "512b", "10k", "10KB",
 * "1.5GiB", "3 M". units_parse_size is binary like docker's RAMInBytes
 * (--memory, --shm-size): k, kb, kib all mean 1024, up to p (2^50),
 * case-insensitive. units_parse_size_si is decimal like docker's
 * FromHumanSize (k = 1000). Fractions are exact (no floating point) and
 * truncated to whole bytes; results above UINT64_MAX are overflow errors.
 */
#ifndef KILN_UTIL_UNITS_H
#define KILN_UTIL_UNITS_H

#include <stddef.h>
#include <stdint.h>
#include "util/error.h"

#define UNITS_NS_PER_US INT64_C (1000)
#define UNITS_NS_PER_MS INT64_C (1000000)
#define UNITS_NS_PER_S INT64_C (1000000000)

int units_parse_duration (const char *s, int64_t *ns, kiln_error **err);
int units_parse_size (const char *s, uint64_t *bytes, kiln_error **err);
int units_parse_size_si (const char *s, uint64_t *bytes, kiln_error **err);

/* Buffer large enough for any formatted size or duration. */
#define UNITS_BUF_SIZE 32

/* Decimal units with one decimal, for progress output: "999 B", "1.2 kB",
 * "12.3 MB", "1.0 GB" (up to EB). Returns buf. */
const char *units_format_size (uint64_t bytes, char buf[UNITS_BUF_SIZE]);
/* Short human duration: "850µs", "450ms", "1.2s", "3m4s", "2h3m"; negative
 * values get a leading "-". Returns buf. */
const char *units_format_duration (int64_t ns, char buf[UNITS_BUF_SIZE]);

#endif
