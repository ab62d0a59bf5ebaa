/* json.c - yajl tree parsing with safety checks, and a yajl_gen writer. */
#include "util/json.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

/* ---- parsing ---- */

/* Reject what yajl would accept but kiln must not: NUL bytes (yajl_tree_parse
 * takes a C string), "\u0000", comments, and nesting beyond JSON_MAX_DEPTH.
 * Strings are tracked so brackets inside them do not count. */
static int
prescan (const char *d, size_t len, kiln_error **err)
{
  size_t depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++)
    {
      char c = d[i];
      if (c == '\0')
        return kiln_error_make (err, 0, "parsing JSON: NUL byte at offset %zu", i);
      if (in_str)
        {
          if (c == '\\')
            {
              if (i + 5 < len && d[i + 1] == 'u' && memcmp (d + i + 2, "0000", 4) == 0)
                return kiln_error_make (err, 0, "parsing JSON: string contains \\u0000 at offset %zu", i);
              i++;
            }
          else if (c == '"')
            in_str = false;
          continue;
        }
      switch (c)
        {
        case '"':
          in_str = true;
          break;
        case '[':
        case '{':
          if (++depth > JSON_MAX_DEPTH)
            return kiln_error_make (err, 0, "parsing JSON: nesting deeper than %d levels", JSON_MAX_DEPTH);
          break;
        case ']':
        case '}':
          if (depth > 0)
            depth--;
          break;
        case '/':
          return kiln_error_make (err, 0, "parsing JSON: comments are not allowed (offset %zu)", i);
        default:
          break;
        }
    }
  return 0;
}

static int
cmp_strp (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Depth is bounded by prescan, so recursion is safe. */
static int
check_tree (const json_value *v, kiln_error **err)
{
  if (json_is_array (v))
    {
      for (size_t i = 0; i < v->u.array.len; i++)
        if (check_tree (v->u.array.values[i], err) < 0)
          return -1;
      return 0;
    }
  if (!json_is_object (v))
    return 0;
  size_t n = v->u.object.len;
  if (n > 1)
    {
      autofree const char **keys = xmemdup (v->u.object.keys, n * sizeof *keys);
      qsort (keys, n, sizeof *keys, cmp_strp);
      for (size_t i = 1; i < n; i++)
        if (strcmp (keys[i - 1], keys[i]) == 0)
          return kiln_error_make (err, 0, "parsing JSON: duplicate key '%s'", keys[i]);
    }
  for (size_t i = 0; i < n; i++)
    if (check_tree (v->u.object.values[i], err) < 0)
      return -1;
  return 0;
}

int
json_parse (const char *data, size_t len, size_t max_size, json_value **out, kiln_error **err)
{
  *out = NULL;
  if (len > max_size)
    return kiln_error_make (err, EFBIG, "parsing JSON: document is %zu bytes, more than the limit of %zu", len,
                            max_size);
  if (prescan (data, len, err) < 0)
    return -1;
  autofree char *buf = xmalloc (len + 1);
  memcpy (buf, data, len);
  buf[len] = '\0';
  char errbuf[1024];
  errbuf[0] = '\0';
  json_value *v = yajl_tree_parse (buf, errbuf, sizeof errbuf);
  if (v == NULL)
    {
      /* yajl's verbose message continues with a context excerpt on later
       * lines; keep the first line. */
      errbuf[strcspn (errbuf, "\n")] = '\0';
      size_t l = strlen (errbuf);
      while (l > 0 && (errbuf[l - 1] == ' ' || errbuf[l - 1] == '.'))
        errbuf[--l] = '\0';
      return kiln_error_make (err, 0, "parsing JSON: %s", l ? errbuf : "invalid document");
    }
  if (check_tree (v, err) < 0)
    {
      yajl_tree_free (v);
      return -1;
    }
  *out = v;
  return 0;
}

void
json_free (json_value *v)
{
  if (v)
    yajl_tree_free (v);
}

void
cleanup_jsonp (json_value **v)
{
  json_free (*v);
  *v = NULL;
}

bool json_is_object (const json_value *v) { return YAJL_IS_OBJECT (v); }
bool json_is_array (const json_value *v) { return YAJL_IS_ARRAY (v); }
bool json_is_string (const json_value *v) { return YAJL_IS_STRING (v); }
bool json_is_number (const json_value *v) { return YAJL_IS_NUMBER (v); }
bool json_is_integer (const json_value *v) { return YAJL_IS_INTEGER (v); }
bool json_is_bool (const json_value *v) { return YAJL_IS_TRUE (v) || YAJL_IS_FALSE (v); }
bool json_is_null (const json_value *v) { return YAJL_IS_NULL (v); }

const char *
json_type_name (const json_value *v)
{
  if (v == NULL)
    return "missing";
  switch (v->type)
    {
    case yajl_t_string:
      return "string";
    case yajl_t_number:
      return "number";
    case yajl_t_object:
      return "object";
    case yajl_t_array:
      return "array";
    case yajl_t_true:
    case yajl_t_false:
      return "boolean";
    case yajl_t_null:
      return "null";
    case yajl_t_any:
      break;
    }
  return "unknown";
}

const char *
json_string (const json_value *v)
{
  return YAJL_IS_STRING (v) ? v->u.string : NULL;
}

const char *
json_number_text (const json_value *v)
{
  return YAJL_IS_NUMBER (v) ? v->u.number.r : NULL;
}

json_value *
json_get (const json_value *obj, const char *key)
{
  if (!YAJL_IS_OBJECT (obj))
    return NULL;
  for (size_t i = 0; i < obj->u.object.len; i++)
    if (strcmp (obj->u.object.keys[i], key) == 0)
      return obj->u.object.values[i];
  return NULL;
}

const char *
json_get_string (const json_value *obj, const char *key)
{
  return json_string (json_get (obj, key));
}

json_value *
json_get_object (const json_value *obj, const char *key)
{
  json_value *v = json_get (obj, key);
  return YAJL_IS_OBJECT (v) ? v : NULL;
}

json_value *
json_get_array (const json_value *obj, const char *key)
{
  json_value *v = json_get (obj, key);
  return YAJL_IS_ARRAY (v) ? v : NULL;
}

bool
json_get_bool (const json_value *obj, const char *key, bool dflt)
{
  json_value *v = json_get (obj, key);
  if (YAJL_IS_TRUE (v))
    return true;
  if (YAJL_IS_FALSE (v))
    return false;
  return dflt;
}

int
json_get_int64 (const json_value *obj, const char *key, int64_t *out, kiln_error **err)
{
  json_value *v = json_get (obj, key);
  if (v == NULL || YAJL_IS_NULL (v))
    return 0;
  if (!YAJL_IS_INTEGER (v))
    {
      if (YAJL_IS_NUMBER (v))
        return kiln_error_make (err, 0, "'%s': %s is not an integer in the 64-bit range", key, v->u.number.r);
      return kiln_error_make (err, 0, "'%s': expected an integer, found %s", key, json_type_name (v));
    }
  *out = v->u.number.i;
  return 1;
}

json_value *
json_lookup (const json_value *v, ...)
{
  va_list ap;
  va_start (ap, v);
  const char *key;
  json_value *cur = (json_value *) v;
  while ((key = va_arg (ap, const char *)) != NULL && cur != NULL)
    cur = json_get (cur, key);
  va_end (ap);
  return cur;
}

size_t
json_object_size (const json_value *obj)
{
  return YAJL_IS_OBJECT (obj) ? obj->u.object.len : 0;
}

const char *
json_object_key (const json_value *obj, size_t i)
{
  return i < json_object_size (obj) ? obj->u.object.keys[i] : NULL;
}

json_value *
json_object_value (const json_value *obj, size_t i)
{
  return i < json_object_size (obj) ? obj->u.object.values[i] : NULL;
}

size_t
json_array_size (const json_value *arr)
{
  return YAJL_IS_ARRAY (arr) ? arr->u.array.len : 0;
}

json_value *
json_array_get (const json_value *arr, size_t i)
{
  return i < json_array_size (arr) ? arr->u.array.values[i] : NULL;
}

int
json_to_strv (const json_value *arr, const char *what, char ***out, kiln_error **err)
{
  *out = NULL;
  if (arr != NULL && !YAJL_IS_NULL (arr) && !YAJL_IS_ARRAY (arr))
    return kiln_error_make (err, 0, "'%s': expected an array of strings, found %s", what, json_type_name (arr));
  size_t n = json_array_size (arr);
  char **v = xcalloc (n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    {
      const char *s = json_string (arr->u.array.values[i]);
      if (s == NULL)
        {
          strv_free (v);
          return kiln_error_make (err, 0, "'%s': element %zu is %s, not a string", what, i,
                                  json_type_name (arr->u.array.values[i]));
        }
      v[i] = xstrdup (s);
    }
  *out = v;
  return 0;
}

/* ---- generation ---- */

/* Per open container: 'a' array, 'k' object expecting a key, 'v' object
 * expecting the value of the key just written. */
struct json_writer
{
  yajl_gen g;
  strbuf sb;
  kiln_error *err;
  char stack[JSON_MAX_DEPTH];
  int depth;
  bool done;
};

static void
print_cb (void *ctx, const char *str, size_t len)
{
  strbuf_add (ctx, str, len);
}

json_writer *
json_writer_new (void)
{
  json_writer *w = xzalloc (sizeof *w);
  strbuf_init (&w->sb, 256);
  w->g = yajl_gen_alloc (NULL);
  if (w->g == NULL)
    abort ();
  yajl_gen_config (w->g, yajl_gen_print_callback, print_cb, &w->sb);
  yajl_gen_config (w->g, yajl_gen_validate_utf8, 1);
  return w;
}

void
json_writer_free (json_writer *w)
{
  if (w == NULL)
    return;
  yajl_gen_free (w->g);
  strbuf_release (&w->sb);
  kiln_error_free (w->err);
  free (w);
}

void
cleanup_json_writerp (json_writer **w)
{
  json_writer_free (*w);
  *w = NULL;
}

static const char *
gen_status_str (yajl_gen_status st)
{
  switch (st)
    {
    case yajl_gen_status_ok:
      return "ok";
    case yajl_gen_keys_must_be_strings:
      return "keys must be strings";
    case yajl_max_depth_exceeded:
      return "maximum nesting depth exceeded";
    case yajl_gen_in_error_state:
      return "generator in error state";
    case yajl_gen_generation_complete:
      return "document already complete";
    case yajl_gen_invalid_number:
      return "invalid number";
    case yajl_gen_no_buf:
      return "no buffer";
    case yajl_gen_invalid_string:
      return "invalid UTF-8 in string";
    }
  return "unknown generator error";
}

static void
writer_fail (json_writer *w, const char *msg)
{
  if (w->err == NULL)
    kiln_error_make (&w->err, 0, "generating JSON: %s", msg);
}

static bool
check (json_writer *w, yajl_gen_status st)
{
  if (st != yajl_gen_status_ok)
    {
      writer_fail (w, gen_status_str (st));
      return false;
    }
  return true;
}

/* Is a value allowed here? */
static bool
value_begin (json_writer *w)
{
  if (w->err)
    return false;
  if (w->depth == 0)
    {
      if (w->done)
        {
          writer_fail (w, "more than one top-level value");
          return false;
        }
      return true;
    }
  if (w->stack[w->depth - 1] == 'k')
    {
      writer_fail (w, "object member without a key");
      return false;
    }
  return true;
}

static void
value_end (json_writer *w)
{
  if (w->depth == 0)
    w->done = true;
  else if (w->stack[w->depth - 1] == 'v')
    w->stack[w->depth - 1] = 'k';
}

static void
container_begin (json_writer *w, char kind)
{
  if (!value_begin (w))
    return;
  if (w->depth >= JSON_MAX_DEPTH)
    {
      writer_fail (w, "nesting deeper than the maximum depth");
      return;
    }
  if (!check (w, kind == 'a' ? yajl_gen_array_open (w->g) : yajl_gen_map_open (w->g)))
    return;
  w->stack[w->depth++] = kind;
}

static void
container_end (json_writer *w, bool object)
{
  if (w->err)
    return;
  if (w->depth == 0 || (object ? w->stack[w->depth - 1] == 'a' : w->stack[w->depth - 1] != 'a'))
    {
      writer_fail (w, object ? "end of object without a matching begin" : "end of array without a matching begin");
      return;
    }
  if (object && w->stack[w->depth - 1] == 'v')
    {
      writer_fail (w, "key without a value at end of object");
      return;
    }
  if (!check (w, object ? yajl_gen_map_close (w->g) : yajl_gen_array_close (w->g)))
    return;
  w->depth--;
  value_end (w);
}

void json_writer_begin_object (json_writer *w) { container_begin (w, 'k'); }
void json_writer_end_object (json_writer *w) { container_end (w, true); }
void json_writer_begin_array (json_writer *w) { container_begin (w, 'a'); }
void json_writer_end_array (json_writer *w) { container_end (w, false); }

void
json_writer_key (json_writer *w, const char *key)
{
  if (w->err)
    return;
  if (w->depth == 0 || w->stack[w->depth - 1] != 'k')
    {
      writer_fail (w, "key outside an object or where a value belongs");
      return;
    }
  if (check (w, yajl_gen_string (w->g, (const unsigned char *) key, strlen (key))))
    w->stack[w->depth - 1] = 'v';
}

void
json_writer_string_len (json_writer *w, const char *s, size_t len)
{
  if (value_begin (w) && check (w, yajl_gen_string (w->g, (const unsigned char *) s, len)))
    value_end (w);
}

void
json_writer_string (json_writer *w, const char *s)
{
  if (s == NULL)
    json_writer_null (w);
  else
    json_writer_string_len (w, s, strlen (s));
}

void
json_writer_int (json_writer *w, int64_t v)
{
  if (value_begin (w) && check (w, yajl_gen_integer (w->g, (long long) v)))
    value_end (w);
}

void
json_writer_bool (json_writer *w, bool v)
{
  if (value_begin (w) && check (w, yajl_gen_bool (w->g, v)))
    value_end (w);
}

void
json_writer_null (json_writer *w)
{
  if (value_begin (w) && check (w, yajl_gen_null (w->g)))
    value_end (w);
}

void
json_writer_value (json_writer *w, const json_value *v)
{
  if (w->err)
    return;
  if (v == NULL)
    {
      writer_fail (w, "missing value");
      return;
    }
  switch (v->type)
    {
    case yajl_t_string:
      json_writer_string (w, v->u.string);
      break;
    case yajl_t_number:
      if (value_begin (w) && check (w, yajl_gen_number (w->g, v->u.number.r, strlen (v->u.number.r))))
        value_end (w);
      break;
    case yajl_t_object:
      json_writer_begin_object (w);
      for (size_t i = 0; i < v->u.object.len && !w->err; i++)
        {
          json_writer_key (w, v->u.object.keys[i]);
          json_writer_value (w, v->u.object.values[i]);
        }
      json_writer_end_object (w);
      break;
    case yajl_t_array:
      json_writer_begin_array (w);
      for (size_t i = 0; i < v->u.array.len && !w->err; i++)
        json_writer_value (w, v->u.array.values[i]);
      json_writer_end_array (w);
      break;
    case yajl_t_true:
      json_writer_bool (w, true);
      break;
    case yajl_t_false:
      json_writer_bool (w, false);
      break;
    case yajl_t_null:
      json_writer_null (w);
      break;
    case yajl_t_any:
      writer_fail (w, "value of unknown type");
      break;
    }
}

void
json_writer_raw (json_writer *w, const char *json, size_t len)
{
  if (w->err)
    return;
  autojson json_value *v = NULL;
  kiln_error *e = NULL;
  if (json_parse (json, len, (size_t) -1, &v, &e) < 0)
    {
      writer_fail (w, e->msg);
      kiln_error_free (e);
      return;
    }
  json_writer_value (w, v);
}

void
json_writer_kv_string (json_writer *w, const char *key, const char *s)
{
  json_writer_key (w, key);
  json_writer_string (w, s);
}

void
json_writer_kv_int (json_writer *w, const char *key, int64_t v)
{
  json_writer_key (w, key);
  json_writer_int (w, v);
}

void
json_writer_kv_bool (json_writer *w, const char *key, bool v)
{
  json_writer_key (w, key);
  json_writer_bool (w, v);
}

int
json_writer_finish (json_writer *w, char **out, size_t *len, kiln_error **err)
{
  if (w->err)
    return kiln_error_make (err, w->err->status, "%s", w->err->msg);
  if (!w->done || w->depth != 0)
    return kiln_error_make (err, 0, "generating JSON: document is incomplete");
  *out = strbuf_detach (&w->sb, len);
  writer_fail (w, "writer already finished");
  return 0;
}

int
json_generate (const json_value *v, char **out, size_t *len, kiln_error **err)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_value (w, v);
  return json_writer_finish (w, out, len, err);
}
