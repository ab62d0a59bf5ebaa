/* error.c - error chaining. */
#include "util/error.h"
#include "util/alloc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int
error_ret (int status)
{
  return status > 0 ? -status : -1;
}

int
kiln_error_make (kiln_error **err, int status, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  if (err == NULL)
    {
      free (msg);
      return error_ret (status);
    }
  kiln_error_clear (err);
  kiln_error *e = xzalloc (sizeof *e);
  e->status = status;
  e->msg = msg;
  *err = e;
  return error_ret (status);
}

int
kiln_error_wrap (kiln_error **err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *ctx = xvasprintf (fmt, ap);
  va_end (ap);
  if (err == NULL)
    return -1;
  if (*err == NULL)
    return kiln_error_make (err, 0, "%s: unknown error", ctx);
  char *msg = xasprintf ("%s: %s", ctx, (*err)->msg);
  free ((*err)->msg);
  (*err)->msg = msg;
  return error_ret ((*err)->status);
}

char *
kiln_error_string (const kiln_error *err)
{
  if (err == NULL)
    return xstrdup ("unknown error");
  if (err->status > 0)
    return xasprintf ("%s: %s", err->msg, strerror (err->status));
  return xstrdup (err->msg);
}

void
kiln_error_free (kiln_error *err)
{
  if (err == NULL)
    return;
  free (err->msg);
  free (err);
}

void
kiln_error_clear (kiln_error **err)
{
  if (err && *err)
    {
      kiln_error_free (*err);
      *err = NULL;
    }
}

void
cleanup_errorp (kiln_error **err)
{
  kiln_error_clear (err);
}
