/* testutil.h - shared helpers for cmocka unit tests. */
#ifndef KILN_TESTUTIL_H
#define KILN_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include "util/error.h"

/* Create a fresh temp directory under $TMPDIR (or /tmp); returns its path
 * (caller frees) and an O_DIRECTORY fd in *fd. Aborts the test on failure. */
char *test_mkdtemp (int *fd);
/* Remove a directory tree created by test_mkdtemp (uses fs_rm_rf_at). */
void test_rmtree (const char *path);
/* Write a small file relative to dirfd (creating it). */
void test_write_file (int dirfd, const char *path, const char *content);
/* The same with missing parent directories (0755) and then mode. */
void test_put_file (int dirfd, const char *path, const char *content, unsigned mode);
/* Fail the test with the message of *err if ret < 0. */
#define assert_ok(ret, err)                                                          \
  do                                                                                 \
    {                                                                                \
      if ((ret) < 0)                                                                 \
        fail_msg ("unexpected error: %s", (err) ? (err)->msg : "(no error set)");    \
    }                                                                                \
  while (0)
/* Skip the current test, printing why (cmocka 1.1 has no skip message). */
#define test_skip(reason)                                                           \
  do                                                                                \
    {                                                                               \
      print_message ("# skip reason: %s\n", reason);                               \
      skip ();                                                                      \
    }                                                                               \
  while (0)
/* Enter a private mount namespace in which this process may mount FUSE:
 * as root a new mount namespace, otherwise a user namespace that maps
 * only the caller (to 0) with its own mount namespace; mounts private.
 * Returns NULL on success, else why not (the caller's tests skip). */
const char *test_fuse_namespace (void);
/* True if err's message contains needle. */
bool test_err_contains (const kiln_error *err, const char *needle);

#endif
