/* json.h - JSON parsing (yajl tree) and deterministic generation (yajl gen).
 *
 * Parsing is strict and safe on hostile input (registry responses, image
 * configs from base images, seccomp profiles):
 * - input larger than max_size is rejected before parsing;
 * - nesting deeper than JSON_MAX_DEPTH is rejected before yajl sees it (yajl's
 *   tree free and kiln's walkers recurse, and yajl_gen cannot go deeper);
 * - comments (which yajl_tree_parse would allow) are rejected;
 * - strings must be valid UTF-8 (yajl validates) and may not contain NUL
 *   ("\u0000" is rejected: C strings would silently truncate it);
 * - an object with a duplicate key is rejected (parsers disagree on which one
 *   wins, which is a known confusion attack on manifests);
 * - numbers keep their source text; integers outside int64 are "numbers" but
 *   not "integers" (json_get_int64 reports them as an error).
 * Errors read "parsing JSON: <yajl's message>".
 *
 * Generation writes compact JSON (no whitespace) with keys in the order they
 * are written, so the same calls always give the same bytes (manifest and
 * config digests depend on it). Strings are validated as UTF-8; control
 * characters are escaped as \uXXXX (or \n, \t, ...), '/' is not escaped.
 */
#ifndef KILN_UTIL_JSON_H
#define KILN_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>
#include "util/error.h"
#include "util/strbuf.h"

/* A parsed value is yajl's tree node; use the accessors below rather than the
 * union so type checks are never skipped. */
typedef struct yajl_val_s json_value;

#define JSON_MAX_DEPTH 100
/* A sensible max_size for manifests and configs (the OCI distribution spec
 * suggests registries accept manifests up to 4 MiB). */
#define JSON_DEFAULT_MAX_SIZE (16u * 1024 * 1024)

/* Parse len bytes (need not be NUL-terminated). *out is owned by the caller
 * (json_free / autojson). */
int json_parse (const char *data, size_t len, size_t max_size, json_value **out, kiln_error **err);
void json_free (json_value *v);
void cleanup_jsonp (json_value **v);
#define autojson __attribute__ ((cleanup (cleanup_jsonp)))

/* Type tests; all false for NULL. */
bool json_is_object (const json_value *v);
bool json_is_array (const json_value *v);
bool json_is_string (const json_value *v);
bool json_is_number (const json_value *v);
bool json_is_integer (const json_value *v); /* a number that fits int64 */
bool json_is_bool (const json_value *v);
bool json_is_null (const json_value *v);
/* "object", "array", "string", "number", "boolean", "null" ("missing" for NULL). */
const char *json_type_name (const json_value *v);

/* Scalar accessors: NULL / false when v has another type. */
const char *json_string (const json_value *v);
/* Source text of a number ("1.5e3"), NULL if not a number. */
const char *json_number_text (const json_value *v);

/* Object members. Missing key or non-object obj gives NULL. */
json_value *json_get (const json_value *obj, const char *key);
/* Typed lookups: NULL when missing or of another type. */
const char *json_get_string (const json_value *obj, const char *key);
json_value *json_get_object (const json_value *obj, const char *key);
json_value *json_get_array (const json_value *obj, const char *key);
/* dflt when missing or not a boolean. */
bool json_get_bool (const json_value *obj, const char *key, bool dflt);
/* 1 and *out set when present and an integer; 0 when missing or null (*out
 * untouched); negative with an error naming key when present but not an
 * integer (a string, 1.5, 1e30, ...). */
int json_get_int64 (const json_value *obj, const char *key, int64_t *out, kiln_error **err);
/* Follow a NULL-terminated list of object keys: json_lookup (v, "config",
 * "Labels", NULL). NULL if any step is missing or not an object. */
json_value *json_lookup (const json_value *v, ...) __attribute__ ((sentinel));

/* Iteration. Sizes are 0 for other types; index out of range gives NULL. */
size_t json_object_size (const json_value *obj);
const char *json_object_key (const json_value *obj, size_t i);
json_value *json_object_value (const json_value *obj, size_t i);
size_t json_array_size (const json_value *arr);
json_value *json_array_get (const json_value *arr, size_t i);

/* Copy an array of strings into a new strv (NULL-terminated, strv_free). A
 * NULL or JSON null arr gives an empty vector; any non-string element or a
 * non-array is an error naming what (e.g. "Cmd"). */
int json_to_strv (const json_value *arr, const char *what, char ***out, kiln_error **err);

/* ---- generation ---- */

typedef struct json_writer json_writer;

json_writer *json_writer_new (void);
void json_writer_free (json_writer *w);
void cleanup_json_writerp (json_writer **w);
#define autojsonwriter __attribute__ ((cleanup (cleanup_json_writerp)))

/* Misuse (a value where a key belongs, unbalanced end, invalid UTF-8, depth
 * over JSON_MAX_DEPTH) records the first error; later calls do nothing and
 * json_writer_finish returns it. So callers check only once at the end. */
void json_writer_begin_object (json_writer *w);
void json_writer_end_object (json_writer *w);
void json_writer_begin_array (json_writer *w);
void json_writer_end_array (json_writer *w);
void json_writer_key (json_writer *w, const char *key);
/* NULL writes null. */
void json_writer_string (json_writer *w, const char *s);
void json_writer_string_len (json_writer *w, const char *s, size_t len);
void json_writer_int (json_writer *w, int64_t v);
void json_writer_bool (json_writer *w, bool v);
void json_writer_null (json_writer *w);
/* Insert one complete JSON value given as text; it is parsed (json_parse
 * rules) and re-emitted compactly, so the output stays valid and canonical. */
void json_writer_raw (json_writer *w, const char *json, size_t len);
/* Write a parsed tree (keys in their parsed order; numbers as their text). */
void json_writer_value (json_writer *w, const json_value *v);
/* Helpers for the common "key": value members. */
void json_writer_kv_string (json_writer *w, const char *key, const char *s);
void json_writer_kv_int (json_writer *w, const char *key, int64_t v);
void json_writer_kv_bool (json_writer *w, const char *key, bool v);

/* Finish: exactly one complete top-level value must have been written. On
 * success *out is the malloc'd NUL-terminated text (caller frees) and *len its
 * length; the writer may then only be freed. */
int json_writer_finish (json_writer *w, char **out, size_t *len, kiln_error **err);

/* Serialise a parsed tree (compact). */
int json_generate (const json_value *v, char **out, size_t *len, kiln_error **err);

#endif
