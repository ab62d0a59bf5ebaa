/* error.h - error values carried up the call stack (crun's style).
 *
 * A function that can fail returns an int (negative on failure) and takes a
 * trailing `kiln_error **err`. At the failure site it calls kiln_error_make()
 * with the saved errno (or 0 when errno says nothing) and a lowercase message
 * that starts with what failed and quotes names: "open 'foo'". Each caller that
 * adds meaning wraps it: kiln_error_wrap(err, "pulling layer %s", digest)
 * gives "pulling layer sha256:..: open 'foo'". Only main() prints the error,
 * once, with strerror(status) appended.
 */
#ifndef KILN_UTIL_ERROR_H
#define KILN_UTIL_ERROR_H

#include <stdio.h>

typedef struct kiln_error
{
  int status;  /* errno value, or 0 if the failure is not a system error */
  char *msg;   /* context chain, outermost first */
  int kind;    /* KILN_ERROR_*: what callers may branch on (0: nothing special) */
  /* The exit status the failure asks the process for (0: the command's
   * own): a failed RUN step's status, as kaniko exits with it. */
  int exit_code;
} kiln_error;

/* kiln_error.kind: the thing asked for does not exist (e.g. HTTP 404 for a
 * manifest): a build-cache lookup treats it as a miss, not a failure. */
#define KILN_ERROR_NOT_FOUND 1
/* ... the server could not be reached (connection, DNS, timeout after the
 * retries): nothing was said about the thing itself. */
#define KILN_ERROR_UNREACHABLE 2

/* Set *err (which must be NULL or hold an error that is discarded) and return
 * a negative value: -status, or -1 when status is 0. */
int kiln_error_make (kiln_error **err, int status, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Prefix "CONTEXT: " to the message of *err and return the same negative value
 * kiln_error_make would. If *err is NULL (a bug in the callee), an error with
 * just the context is created so nothing is lost. */
int kiln_error_wrap (kiln_error **err, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* "message: strerror(status)" (or just the message); caller frees. */
char *kiln_error_string (const kiln_error *err);

void kiln_error_free (kiln_error *err);
void cleanup_errorp (kiln_error **err);
#define autoerror __attribute__ ((cleanup (cleanup_errorp)))

/* Discard the error (the caller decided it does not matter). */
void kiln_error_clear (kiln_error **err);

#endif
