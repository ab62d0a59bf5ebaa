/* alloc.h - checked allocation, cleanup attributes and ownership transfer.
 *
 * Allocation failure is not recoverable in kiln: the x* wrappers abort with a
 * message instead of returning NULL, so callers never check for NULL.
 *
 * Cleanup helpers follow crun/systemd: declare a variable with one of the
 * _cleanup_*_ / auto* attributes and it is released when it goes out of scope.
 * Hand ownership out of such a scope with steal_pointer()/steal_fd().
 */
#ifndef KILN_UTIL_ALLOC_H
#define KILN_UTIL_ALLOC_H

#include <stddef.h>
#include <stdio.h>
#include <stdarg.h>

void *xmalloc (size_t size);
void *xzalloc (size_t size);
void *xcalloc (size_t nmemb, size_t size);
void *xrealloc (void *ptr, size_t size);
/* Grow an array of nmemb elements of size bytes, checking for overflow. */
void *xreallocarray (void *ptr, size_t nmemb, size_t size);
char *xstrdup (const char *s);
char *xstrndup (const char *s, size_t n);
void *xmemdup (const void *p, size_t n);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
char *xvasprintf (const char *fmt, va_list ap) __attribute__ ((format (printf, 1, 0)));

/* Free a string that held a secret (password, token, Authorization header)
 * after overwriting it, so the value does not linger in freed heap memory
 * where a later bug or a core dump could show it. NULL is fine. */
void xfree_secret (char *s);

/* Cleanup functions; each takes a pointer to the variable. */
void cleanup_freep (void *p);
void cleanup_closep (int *fd);
void cleanup_fclosep (FILE **f);
void cleanup_strvp (char ***v);

#define autofree __attribute__ ((cleanup (cleanup_freep)))
#define autoclose __attribute__ ((cleanup (cleanup_closep)))
#define autofclose __attribute__ ((cleanup (cleanup_fclosep)))
#define autostrv __attribute__ ((cleanup (cleanup_strvp)))

/* Take the value out of *pp and leave NULL behind. */
static inline void *
steal_pointer_impl (void *pp)
{
  void **p = (void **) pp;
  void *v = *p;
  *p = NULL;
  return v;
}
#define steal_pointer(pp) ((__typeof__ (*(pp))) steal_pointer_impl (pp))

static inline int
steal_fd (int *fd)
{
  int v = *fd;
  *fd = -1;
  return v;
}

/* NULL-terminated string vectors. */
size_t strv_len (char *const *v);
void strv_free (char **v);
/* Append a copy of s; *v may be NULL. */
void strv_push (char ***v, const char *s);
char **strv_dup (char *const *v);

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

#endif
