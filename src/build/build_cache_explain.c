/* build_cache_explain.c - a cache key's components and why a step missed
 * (see build_cache_explain.h). */
#include "build/build_cache_explain.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/json.h"
#include "util/strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX 256           /* longer field values are kept as a digest */
#define FILES_MAX_BYTES (1u << 20)
#define FILE_DIGEST_HEX 16      /* per-file: a change detector, not a key */
#define FIELDS_MAX 4096
#define ANCESTRY_MAX 1024
#define JSON_FILES_SHOWN 20     /* files listed in a JSON reason */

typedef struct pair
{
  char *a, *b;
} pair;

typedef struct pairs
{
  pair *v;
  size_t n;
} pairs;

typedef struct ancestor
{
  char *label, *kind, *key;
  bool ran;
} ancestor;

struct cache_components
{
  char *parent;
  pairs fields, notes, files;
  ancestor *anc;
  size_t n_anc;
  uint64_t files_total;
  char *files_rest;     /* chained digest of the files past the cap, or NULL */
  size_t files_bytes;
  /* while a file is being recorded */
  digest_ctx *file_d;
  char *file_name;
};

/* ---- recording ---- */

cache_components *
cache_components_new (void)
{
  return xzalloc (sizeof (cache_components));
}

static void
pairs_clear (pairs *p)
{
  for (size_t i = 0; i < p->n; i++)
    {
      free (p->v[i].a);
      free (p->v[i].b);
    }
  free (p->v);
  p->v = NULL;
  p->n = 0;
}

static void
pairs_push (pairs *p, const char *a, const char *b)
{
  p->v = xreallocarray (p->v, p->n + 1, sizeof *p->v);
  p->v[p->n].a = xstrdup (a);
  p->v[p->n].b = xstrdup (b ? b : "");
  p->n++;
}

void
cache_components_free (cache_components *c)
{
  if (!c)
    return;
  free (c->parent);
  pairs_clear (&c->fields);
  pairs_clear (&c->notes);
  pairs_clear (&c->files);
  for (size_t i = 0; i < c->n_anc; i++)
    {
      free (c->anc[i].label);
      free (c->anc[i].kind);
      free (c->anc[i].key);
    }
  free (c->anc);
  free (c->files_rest);
  digest_free (c->file_d);
  free (c->file_name);
  free (c);
}

void
cleanup_cache_componentsp (cache_components **c)
{
  cache_components_free (*c);
}

void
cache_components_set_parent (cache_components *c, const char *parent)
{
  free (c->parent);
  c->parent = xstrdup (parent ? parent : "");
}

/* A value as recorded: itself, or its digest when long. */
static char *
compact_value (const char *v)
{
  size_t n = v ? strlen (v) : 0;
  if (n <= VALUE_MAX)
    return xstrdup (v ? v : "");
  char d[DIGEST_STRING_SIZE];
  digest_buffer (v, n, d);
  return xasprintf ("[%s, %zu bytes]", d, n);
}

void
cache_components_add (cache_components *c, const char *field, const char *value)
{
  if (c->file_d)
    {
      digest_update (c->file_d, field, strlen (field) + 1);
      digest_update (c->file_d, value ? value : "", value ? strlen (value) + 1 : 1);
      return;
    }
  if (strcmp (field, "changes") == 0 || c->fields.n >= FIELDS_MAX)
    return; /* the count shows in the file list */
  autofree char *v = compact_value (value);
  pairs_push (&c->fields, field, v);
}

void
cache_components_file_begin (cache_components *c, const char *name)
{
  cache_components_file_end (c);
  c->file_d = digest_new ();
  c->file_name = xstrdup (name);
}

void
cache_components_file_end (cache_components *c)
{
  if (!c->file_d)
    return;
  char d[DIGEST_STRING_SIZE];
  digest_final (c->file_d, d);
  digest_free (c->file_d);
  c->file_d = NULL;
  autofree char *name = steal_pointer (&c->file_name);
  char shortd[FILE_DIGEST_HEX + 1];
  snprintf (shortd, sizeof shortd, "%s", digest_hex (d));
  c->files_total++;
  size_t cost = strlen (name) + FILE_DIGEST_HEX + 8;
  if (!c->files_rest && c->files.n < CACHE_COMPONENTS_MAX_FILES && c->files_bytes + cost <= FILES_MAX_BYTES)
    {
      pairs_push (&c->files, name, shortd);
      c->files_bytes += cost;
      return;
    }
  /* Past the cap: only a chained digest says whether the rest changed. */
  autofree char *chain = xasprintf ("%s\n%s\n%s", c->files_rest ? c->files_rest : "", name, shortd);
  char rd[DIGEST_STRING_SIZE];
  digest_buffer (chain, strlen (chain), rd);
  free (c->files_rest);
  c->files_rest = xstrdup (rd);
}

void
cache_components_note (cache_components *c, const char *what, const char *value)
{
  for (size_t i = 0; i < c->notes.n; i++)
    if (strcmp (c->notes.v[i].a, what) == 0)
      {
        free (c->notes.v[i].b);
        c->notes.v[i].b = compact_value (value);
        return;
      }
  autofree char *v = compact_value (value);
  pairs_push (&c->notes, what, v);
}

void
cache_components_ancestor (cache_components *c, const char *label, const char *kind, const char *key, bool ran)
{
  if (c->n_anc >= ANCESTRY_MAX)
    return;
  c->anc = xreallocarray (c->anc, c->n_anc + 1, sizeof *c->anc);
  ancestor *a = &c->anc[c->n_anc++];
  a->label = xstrdup (label);
  a->kind = xstrdup (kind);
  /* The stage key's first hex digits: enough to see where chains part. */
  a->key = xstrndup (digest_hex (key), FILE_DIGEST_HEX);
  a->ran = ran;
}

static const char *
note_of (const cache_components *c, const char *what)
{
  for (size_t i = 0; c && i < c->notes.n; i++)
    if (strcmp (c->notes.v[i].a, what) == 0)
      return c->notes.v[i].b;
  return NULL;
}

/* ---- JSON ---- */

static void
write_pairs (json_writer *w, const char *key, const pairs *p)
{
  json_writer_key (w, key);
  json_writer_begin_array (w);
  for (size_t i = 0; i < p->n; i++)
    {
      json_writer_begin_array (w);
      json_writer_string (w, p->v[i].a);
      json_writer_string (w, p->v[i].b);
      json_writer_end_array (w);
    }
  json_writer_end_array (w);
}

int
cache_components_to_json (const cache_components *c, char **out, size_t *len, kiln_error **err)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_int (w, "v", 1);
  json_writer_kv_string (w, "parent", c->parent ? c->parent : "");
  write_pairs (w, "notes", &c->notes);
  write_pairs (w, "fields", &c->fields);
  write_pairs (w, "files", &c->files);
  json_writer_kv_int (w, "files_total", (int64_t) c->files_total);
  if (c->files_rest)
    json_writer_kv_string (w, "files_rest", c->files_rest);
  json_writer_key (w, "ancestry");
  json_writer_begin_array (w);
  for (size_t i = 0; i < c->n_anc; i++)
    {
      json_writer_begin_array (w);
      json_writer_string (w, c->anc[i].label);
      json_writer_string (w, c->anc[i].kind);
      json_writer_string (w, c->anc[i].key);
      json_writer_end_array (w);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  return json_writer_finish (w, out, len, err);
}

/* An array of [string, string(, string)] arrays; width 2 or 3. */
static int
read_tuples (const json_value *root, const char *key, size_t width, size_t max,
             void (*add) (void *, const char *const *), void *ctx, kiln_error **err)
{
  json_value *arr = json_get (root, key);
  if (!arr)
    return 0;
  if (!json_is_array (arr) || json_array_size (arr) > max)
    return kiln_error_make (err, EINVAL, "build cache components: '%s' is not an array of at most %zu entries", key,
                            max);
  for (size_t i = 0; i < json_array_size (arr); i++)
    {
      json_value *t = json_array_get (arr, i);
      const char *s[3] = { NULL, NULL, NULL };
      if (!json_is_array (t) || json_array_size (t) != width)
        return kiln_error_make (err, EINVAL, "build cache components: '%s' entry %zu is not a %zu-tuple", key, i,
                                width);
      for (size_t k = 0; k < width; k++)
        if (!(s[k] = json_string (json_array_get (t, k))))
          return kiln_error_make (err, EINVAL, "build cache components: '%s' entry %zu is not all strings", key, i);
      add (ctx, s);
    }
  return 0;
}

static void
add_field (void *ctx, const char *const *s)
{
  pairs_push (ctx, s[0], s[1]);
}

static void
add_ancestor (void *ctx, const char *const *s)
{
  cache_components *c = ctx;
  c->anc = xreallocarray (c->anc, c->n_anc + 1, sizeof *c->anc);
  c->anc[c->n_anc++] = (ancestor) { xstrdup (s[0]), xstrdup (s[1]), xstrdup (s[2]), false };
}

int
cache_components_parse (const char *json, size_t len, cache_components **out, kiln_error **err)
{
  autojson json_value *root = NULL;
  if (json_parse (json, len, CACHE_COMPONENTS_MAX_SIZE, &root, err) < 0)
    return kiln_error_wrap (err, "build cache components");
  if (!json_is_object (root))
    return kiln_error_make (err, EINVAL, "build cache components: not a JSON object");
  int64_t v = 0, total = 0;
  if (json_get_int64 (root, "v", &v, err) < 0 || json_get_int64 (root, "files_total", &total, err) < 0)
    return kiln_error_wrap (err, "build cache components");
  if (v != 1)
    return kiln_error_make (err, EINVAL, "build cache components: unknown version %" PRId64, v);
  const char *parent = json_get_string (root, "parent");
  const char *rest = json_get_string (root, "files_rest");
  if (!parent || total < 0 || (json_get (root, "files_rest") && !rest))
    return kiln_error_make (err, EINVAL, "build cache components: bad 'parent', 'files_total' or 'files_rest'");
  autocomponents cache_components *c = cache_components_new ();
  c->parent = xstrdup (parent);
  c->files_total = (uint64_t) total;
  c->files_rest = rest ? xstrdup (rest) : NULL;
  if (read_tuples (root, "notes", 2, FIELDS_MAX, add_field, &c->notes, err) < 0
      || read_tuples (root, "fields", 2, FIELDS_MAX, add_field, &c->fields, err) < 0
      || read_tuples (root, "files", 2, CACHE_COMPONENTS_MAX_FILES, add_field, &c->files, err) < 0
      || read_tuples (root, "ancestry", 3, ANCESTRY_MAX, add_ancestor, c, err) < 0)
    return -1;
  *out = steal_pointer (&c);
  return 0;
}

/* ---- comparing ---- */

static int
cmp_pair (const void *x, const void *y)
{
  const pair *a = *(const pair *const *) x, *b = *(const pair *const *) y;
  int r = strcmp (a->a, b->a);
  return r ? r : strcmp (a->b, b->b);
}

static const pair **
sorted (const pairs *p)
{
  const pair **v = xcalloc (p->n + 1, sizeof *v);
  for (size_t i = 0; i < p->n; i++)
    v[i] = &p->v[i];
  qsort (v, p->n, sizeof *v, cmp_pair);
  return v;
}

typedef enum
{
  FILE_CHANGED,
  FILE_ADDED,
  FILE_REMOVED,
} file_change;

static const char *const file_change_names[] = { "changed", "added", "removed" };

/* Walk the two file lists by name; report (if cb) and count differences. */
static size_t
diff_files (const cache_components *old, const cache_components *now, void (*cb) (void *, const char *, file_change),
            void *ctx)
{
  autofree const pair **a = sorted (&old->files);
  autofree const pair **b = sorted (&now->files);
  size_t i = 0, j = 0, n = 0;
  while (i < old->files.n || j < now->files.n)
    {
      int r = i == old->files.n ? 1 : j == now->files.n ? -1 : strcmp (a[i]->a, b[j]->a);
      const char *name = r <= 0 ? a[i]->a : b[j]->a;
      file_change what = r < 0 ? FILE_REMOVED : r > 0 ? FILE_ADDED : FILE_CHANGED;
      bool differs = r != 0 || strcmp (a[i]->b, b[j]->b) != 0;
      if (differs && cb)
        cb (ctx, name, what);
      n += differs;
      i += r <= 0;
      j += r >= 0;
    }
  return n;
}

static bool
is_source_field (const char *f)
{
  return strcmp (f, "from-stage") == 0 || strcmp (f, "from-image") == 0 || strcmp (f, "mount-stage") == 0
         || strcmp (f, "mount-image") == 0;
}

/* The fields of one class in order: "build-env", sources, or the rest. */
typedef enum
{
  FIELDS_ARGS,
  FIELDS_BUILD_ENV,
  FIELDS_SOURCES,
} field_class;

static field_class
class_of (const char *f)
{
  if (strcmp (f, "build-env") == 0)
    return FIELDS_BUILD_ENV;
  return is_source_field (f) ? FIELDS_SOURCES : FIELDS_ARGS;
}

static const pair **
fields_of (const cache_components *c, field_class cls, size_t *n)
{
  const pair **v = xcalloc (c->fields.n + 1, sizeof *v);
  *n = 0;
  for (size_t i = 0; i < c->fields.n; i++)
    if (class_of (c->fields.v[i].a) == cls)
      v[(*n)++] = &c->fields.v[i];
  return v;
}

/* The first position where two field sequences differ, or -1. */
static long
first_field_diff (const pair **a, size_t na, const pair **b, size_t nb)
{
  size_t n = na < nb ? na : nb;
  for (size_t i = 0; i < n; i++)
    if (strcmp (a[i]->a, b[i]->a) != 0 || strcmp (a[i]->b, b[i]->b) != 0)
      return (long) i;
  return na == nb ? -1 : (long) n;
}

static size_t
count_field_diffs (const cache_components *old, const cache_components *now)
{
  size_t n = 0;
  for (size_t i = 0; i < old->fields.n || i < now->fields.n; i++)
    n += i >= old->fields.n || i >= now->fields.n || strcmp (old->fields.v[i].a, now->fields.v[i].a) != 0
         || strcmp (old->fields.v[i].b, now->fields.v[i].b) != 0;
  return n;
}

static bool
str_differs (const char *a, const char *b)
{
  return strcmp (a ? a : "", b ? b : "") != 0;
}

unsigned
cache_components_distance (const cache_components *old, const cache_components *now)
{
  unsigned d = 0;
  if (str_differs (old->parent, now->parent))
    d += 1000;
  if (str_differs (note_of (old, "instruction"), note_of (now, "instruction")))
    d += 100;
  size_t f = count_field_diffs (old, now);
  d += 10 * (unsigned) (f < 10 ? f : 10);
  size_t files = diff_files (old, now, NULL, NULL);
  d += (unsigned) (files < 50 ? files : 50);
  return d;
}


/* ---- explaining ---- */

typedef struct why
{
  strbuf text;
  json_writer *w;      /* the "reasons" array */
  const char *first;   /* the first reason's code */
  size_t n;
} why;

static void
why_begin (why *y, const char *code)
{
  if (y->n++)
    strbuf_adds (&y->text, "; ");
  else
    y->first = code;
  json_writer_begin_object (y->w);
  json_writer_kv_string (y->w, "reason", code);
}

/* A value for a one-line message: at most 40 characters. */
static char *
shown (const char *v)
{
  if (!v)
    return xstrdup ("(none)");
  size_t n = strlen (v);
  return n <= 40 ? xstrdup (v) : xasprintf ("%.37s...", v);
}

static int
cmp_str_ptr (const void *x, const void *y)
{
  const char *a = *(const char *const *) x, *b = *(const char *const *) y;
  size_t la = strcspn (a, "="), lb = strcspn (b, "=");
  int r = strncmp (a, b, la < lb ? la : lb);
  return r ? r : (int) la - (int) lb;
}

static const char **
build_args_of (const cache_components *c, size_t *n)
{
  autofree const pair **f = fields_of (c, FIELDS_BUILD_ENV, n);
  const char **v = xcalloc (*n + 1, sizeof *v);
  for (size_t i = 0; i < *n; i++)
    v[i] = f[i]->b;
  qsort (v, *n, sizeof *v, cmp_str_ptr);
  return v;
}

static void
build_arg_reason (why *y, const char *o, const char *n)
{
  const char *kv = o ? o : n;
  size_t kl = strcspn (kv, "=");
  autofree char *name = xstrndup (kv, kl);
  const char *ov = o && o[kl] ? o + kl + 1 : NULL, *nv = n && n[kl] ? n + kl + 1 : NULL;
  autofree char *os = shown (ov), *ns = shown (nv);
  why_begin (y, "build_arg_changed");
  json_writer_kv_string (y->w, "name", name);
  json_writer_key (y->w, "old");
  json_writer_string (y->w, ov);
  json_writer_key (y->w, "new");
  json_writer_string (y->w, nv);
  json_writer_end_object (y->w);
  if (o && n)
    strbuf_addf (&y->text, "build-arg %s changed (%s -> %s)", name, os, ns);
  else if (n)
    strbuf_addf (&y->text, "build-arg %s set (%s)", name, ns);
  else
    strbuf_addf (&y->text, "build-arg %s unset (was %s)", name, os);
}

static void
explain_build_args (why *y, const cache_components *old, const cache_components *now)
{
  size_t na, nb, i = 0, j = 0;
  autofree const char **a = build_args_of (old, &na);
  autofree const char **b = build_args_of (now, &nb);
  while (i < na || j < nb)
    {
      int r = i == na ? 1 : j == nb ? -1 : cmp_str_ptr (&a[i], &b[j]);
      if (r < 0)
        build_arg_reason (y, a[i], NULL);
      else if (r > 0)
        build_arg_reason (y, NULL, b[j]);
      else if (strcmp (a[i], b[j]) != 0)
        build_arg_reason (y, a[i], b[j]);
      i += r <= 0;
      j += r >= 0;
    }
}

typedef struct file_walk
{
  why *y;
  size_t n;
  char *first;
  file_change first_what;
} file_walk;

static void
file_cb (void *ctx, const char *name, file_change what)
{
  file_walk *fw = ctx;
  if (fw->n == 0)
    {
      fw->first = xstrdup (name);
      fw->first_what = what;
    }
  if (fw->n++ < JSON_FILES_SHOWN)
    {
      json_writer_begin_object (fw->y->w);
      json_writer_kv_string (fw->y->w, "path", name);
      json_writer_kv_string (fw->y->w, "change", file_change_names[what]);
      json_writer_end_object (fw->y->w);
    }
}

static void
explain_files (why *y, const cache_components *old, const cache_components *now)
{
  size_t n = diff_files (old, now, NULL, NULL);
  bool rest = str_differs (old->files_rest, now->files_rest);
  if (n == 0 && !rest && old->files_total == now->files_total)
    return;
  why_begin (y, "files_changed");
  json_writer_key (y->w, "files");
  json_writer_begin_array (y->w);
  file_walk fw = { y, 0, NULL, FILE_CHANGED };
  diff_files (old, now, file_cb, &fw);
  json_writer_end_array (y->w);
  json_writer_kv_int (y->w, "count", (int64_t) n);
  json_writer_kv_bool (y->w, "more_past_limit", rest);
  json_writer_end_object (y->w);
  if (n == 0)
    strbuf_addf (&y->text, "files past the first %d changed", CACHE_COMPONENTS_MAX_FILES);
  else
    strbuf_addf (&y->text, "%s %s", fw.first, file_change_names[fw.first_what]);
  if (n > 1)
    strbuf_addf (&y->text, " (and %zu more file%s)", n - 1, n == 2 ? "" : "s");
  free (fw.first);
}

static void
explain_sources (why *y, const cache_components *old, const cache_components *now)
{
  size_t na, nb;
  autofree const pair **a = fields_of (old, FIELDS_SOURCES, &na);
  autofree const pair **b = fields_of (now, FIELDS_SOURCES, &nb);
  long i = first_field_diff (a, na, b, nb);
  if (i < 0)
    return;
  const char *field = (size_t) i < nb ? b[i]->a : a[i]->a;
  const char *name = note_of (now, "from-name");
  why_begin (y, "source_changed");
  json_writer_kv_string (y->w, "source", field);
  if (name && strncmp (field, "from-", 5) == 0)
    json_writer_kv_string (y->w, "name", name);
  json_writer_end_object (y->w);
  if (strcmp (field, "from-stage") == 0)
    strbuf_addf (&y->text, "--from stage '%s' changed", name ? name : "?");
  else if (strcmp (field, "from-image") == 0)
    strbuf_addf (&y->text, "--from image '%s' changed", name ? name : "?");
  else
    strbuf_addf (&y->text, "a mounted %s changed", strcmp (field, "mount-stage") == 0 ? "stage" : "image");
}

static void
explain_args (why *y, const cache_components *old, const cache_components *now)
{
  const char *oi = note_of (old, "instruction"), *ni = note_of (now, "instruction");
  if (str_differs (oi, ni))
    {
      autofree char *os = shown (oi);
      why_begin (y, "instruction_changed");
      json_writer_key (y->w, "old");
      json_writer_string (y->w, oi);
      json_writer_key (y->w, "new");
      json_writer_string (y->w, ni);
      json_writer_end_object (y->w);
      strbuf_addf (&y->text, "instruction changed (was: %s)", os);
      return;
    }
  size_t na, nb;
  autofree const pair **a = fields_of (old, FIELDS_ARGS, &na);
  autofree const pair **b = fields_of (now, FIELDS_ARGS, &nb);
  long i = first_field_diff (a, na, b, nb);
  if (i < 0)
    return;
  const pair *o = (size_t) i < na ? a[i] : NULL, *n = (size_t) i < nb ? b[i] : NULL;
  autofree char *os = shown (o ? o->b : NULL), *ns = shown (n ? n->b : NULL);
  why_begin (y, "arguments_changed");
  json_writer_kv_string (y->w, "field", n ? n->a : o->a);
  json_writer_key (y->w, "old");
  json_writer_string (y->w, o ? o->b : NULL);
  json_writer_key (y->w, "new");
  json_writer_string (y->w, n ? n->b : NULL);
  json_writer_end_object (y->w);
  strbuf_addf (&y->text, "expanded %s changed (%s -> %s)", n ? n->a : o->a, os, ns);
}

/* Where the stage's chains part: the first differing ancestor of now. */
static const ancestor *
parting (const cache_components *old, const cache_components *now)
{
  size_t n = old->n_anc < now->n_anc ? old->n_anc : now->n_anc;
  for (size_t i = 0; i < n; i++)
    if (strcmp (old->anc[i].label, now->anc[i].label) != 0 || strcmp (old->anc[i].key, now->anc[i].key) != 0)
      return &now->anc[i];
  return NULL;
}

static void
explain_parent (why *y, const cache_components *old, const cache_components *now)
{
  if (!str_differs (old->parent, now->parent))
    return;
  const ancestor *a = parting (old, now);
  /* An ARG step changes the stage's key when a build-arg does; the
   * build-arg, already named, says it better. */
  if (a && y->n && !a->ran && strcmp (a->kind, "ARG") == 0)
    return;
  why_begin (y, "parent_changed");
  if (a)
    {
      json_writer_kv_string (y->w, "step", a->label);
      json_writer_kv_string (y->w, "kind", a->kind);
      json_writer_kv_bool (y->w, "ran", a->ran);
    }
  json_writer_end_object (y->w);
  if (!a)
    strbuf_adds (&y->text, "parent changed");
  else if (strcmp (a->kind, "FROM") == 0)
    strbuf_adds (&y->text, "parent changed (base image changed)");
  else if (a->ran)
    strbuf_addf (&y->text, "parent changed (step %s re-ran)", a->label);
  else
    strbuf_addf (&y->text, "parent changed (step %s %s changed)", a->label, a->kind);
  static const char *const ctx[] = { "user", "workdir", "shell", "platform" };
  for (size_t i = 0; i < ARRAY_SIZE (ctx); i++)
    {
      const char *o = note_of (old, ctx[i]), *n = note_of (now, ctx[i]);
      if (o && n && strcmp (o, n) != 0)
        {
          autofree char *os = shown (*o ? o : "(default)"), *ns = shown (*n ? n : "(default)");
          strbuf_addf (&y->text, ", %s %s -> %s", ctx[i], os, ns);
        }
    }
}

static void
why_other (why *y, const char *code, const char *text)
{
  why_begin (y, code);
  json_writer_end_object (y->w);
  strbuf_adds (&y->text, text);
}

void
cache_explain (const cache_components *old, const cache_components *now, char **text, char **json)
{
  why y = { .w = json_writer_new () };
  strbuf_init (&y.text, 64);
  json_writer_begin_array (y.w);
  if (!old)
    why_other (&y, "no_earlier_build", "no earlier build of this step");
  else
    {
      explain_args (&y, old, now);
      explain_sources (&y, old, now);
      explain_build_args (&y, old, now);
      explain_files (&y, old, now);
      explain_parent (&y, old, now);
      if (y.n == 0)
        why_other (&y, "entry_unusable", "the earlier entry expired or its layer was pruned");
    }
  json_writer_end_array (y.w);
  autofree char *reasons = NULL;
  size_t rlen = 0;
  autoerror kiln_error *e = NULL, *e2 = NULL;
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_string (w, "reason", y.first);
  json_writer_kv_string (w, "text", y.text.buf);
  if (json_writer_finish (y.w, &reasons, &rlen, &e) == 0)
    {
      json_writer_key (w, "reasons");
      json_writer_raw (w, reasons, rlen);
    }
  json_writer_end_object (w);
  json_writer_free (y.w);
  size_t len;
  if (json_writer_finish (w, json, &len, &e2) < 0)
    *json = xstrdup ("{\"reason\":\"unknown\"}");
  *text = strbuf_detach (&y.text, NULL);
}
