/* alloc.c - checked allocation and cleanup helpers. */
#include "util/alloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void __attribute__ ((noreturn))
oom (size_t size)
{
  /* No allocation from here on: write straight to stderr. */
  char buf[96];
  int n = snprintf (buf, sizeof buf, "kiln: out of memory allocating %zu bytes\n", size);
  if (n > 0)
    {
      ssize_t r = write (2, buf, (size_t) n);
      (void) r;
    }
  abort ();
}

void *
xmalloc (size_t size)
{
  void *p = malloc (size ? size : 1);
  if (p == NULL)
    oom (size);
  return p;
}

void *
xzalloc (size_t size)
{
  return xcalloc (1, size);
}

void *
xcalloc (size_t nmemb, size_t size)
{
  void *p = calloc (nmemb ? nmemb : 1, size ? size : 1);
  if (p == NULL)
    oom (nmemb * size);
  return p;
}

void *
xrealloc (void *ptr, size_t size)
{
  void *p = realloc (ptr, size ? size : 1);
  if (p == NULL)
    oom (size);
  return p;
}

void *
xreallocarray (void *ptr, size_t nmemb, size_t size)
{
  if (size != 0 && nmemb > SIZE_MAX / size)
    oom (SIZE_MAX);
  return xrealloc (ptr, nmemb * size);
}

char *
xstrdup (const char *s)
{
  char *p = strdup (s ? s : "");
  if (p == NULL)
    oom (strlen (s));
  return p;
}

char *
xstrndup (const char *s, size_t n)
{
  char *p = strndup (s, n);
  if (p == NULL)
    oom (n);
  return p;
}

void *
xmemdup (const void *p, size_t n)
{
  void *r = xmalloc (n);
  if (n)
    memcpy (r, p, n);
  return r;
}

char *
xvasprintf (const char *fmt, va_list ap)
{
  char *r = NULL;
  if (vasprintf (&r, fmt, ap) < 0)
    oom (strlen (fmt));
  return r;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *r = xvasprintf (fmt, ap);
  va_end (ap);
  return r;
}

void
xfree_secret (char *s)
{
  if (s)
    {
      explicit_bzero (s, strlen (s));
      free (s);
    }
}

void
cleanup_freep (void *p)
{
  void **pp = (void **) p;
  free (*pp);
  *pp = NULL;
}

void
cleanup_closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
    }
  *fd = -1;
}

void
cleanup_fclosep (FILE **f)
{
  if (*f)
    {
      int saved = errno;
      fclose (*f);
      errno = saved;
    }
  *f = NULL;
}

size_t
strv_len (char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void
strv_free (char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

void
cleanup_strvp (char ***v)
{
  strv_free (*v);
  *v = NULL;
}

void
strv_push (char ***v, const char *s)
{
  size_t n = strv_len (*v);
  *v = xreallocarray (*v, n + 2, sizeof (char *));
  (*v)[n] = xstrdup (s);
  (*v)[n + 1] = NULL;
}

char **
strv_dup (char *const *v)
{
  size_t n = strv_len (v);
  char **r = xcalloc (n + 1, sizeof (char *));
  for (size_t i = 0; i < n; i++)
    r[i] = xstrdup (v[i]);
  return r;
}
