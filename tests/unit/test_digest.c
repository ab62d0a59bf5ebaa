/* test_digest.c - SHA-256 vectors, streaming, validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define D_EMPTY "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define D_ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define D_448 "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define D_MILLION "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

static void
test_vectors (void **state)
{
  (void) state;
  char out[DIGEST_STRING_SIZE];
  digest_buffer ("", 0, out);
  assert_string_equal (out, D_EMPTY);
  digest_buffer ("abc", 3, out);
  assert_string_equal (out, D_ABC);
  digest_buffer (MSG_448, strlen (MSG_448), out);
  assert_string_equal (out, D_448);
  autofree char *m = xmalloc (1000000);
  memset (m, 'a', 1000000);
  digest_buffer (m, 1000000, out);
  assert_string_equal (out, D_MILLION);
  assert_int_equal (strlen (out), DIGEST_STRING_SIZE - 1);
}

static void
test_streaming (void **state)
{
  (void) state;
  autofree char *m = xmalloc (1000000);
  memset (m, 'a', 1000000);
  autodigest digest_ctx *d = digest_new ();
  char out[DIGEST_STRING_SIZE];
  static const size_t chunks[] = { 1, 7, 63, 64, 65, 4093, 1 << 16 };
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
    {
      size_t off = 0;
      while (off < 1000000)
        {
          size_t n = chunks[c] < 1000000 - off ? chunks[c] : 1000000 - off;
          digest_update (d, m + off, n);
          off += n;
        }
      assert_int_equal (digest_bytes (d), 1000000);
      digest_final (d, out);
      assert_string_equal (out, D_MILLION);
      /* final resets: the context is reusable. */
      assert_int_equal (digest_bytes (d), 0);
    }
  digest_update (d, "a", 1);
  digest_update (d, "", 0);
  digest_update (d, "bc", 2);
  digest_final (d, out);
  assert_string_equal (out, D_ABC);
  digest_final (d, out);
  assert_string_equal (out, D_EMPTY);
}

static void
test_fd (void **state)
{
  (void) state;
  int p[2];
  assert_int_equal (pipe (p), 0);
  autoerror kiln_error *err = NULL;
  assert_ok (fs_write_all (p[1], MSG_448, strlen (MSG_448), &err), err);
  close (p[1]);
  char out[DIGEST_STRING_SIZE];
  uint64_t size = 0;
  assert_ok (digest_fd (p[0], out, &size, &err), err);
  close (p[0]);
  assert_string_equal (out, D_448);
  assert_int_equal (size, strlen (MSG_448));
  assert_true (digest_fd (-1, out, NULL, &err) < 0);
}

static void
expect_invalid (const char *d, const char *needle)
{
  autoerror kiln_error *err = NULL;
  assert_true (digest_validate (d, &err) < 0);
  if (strstr (err->msg, needle) == NULL)
    fail_msg ("'%s': error '%s' lacks '%s'", d, err->msg, needle);
}

static void
test_validate (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  assert_ok (digest_validate (D_ABC, &err), err);
  assert_string_equal (digest_hex (D_ABC), D_ABC + 7);
  expect_invalid ("sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
                  "sha512");
  expect_invalid ("SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA256");
  expect_invalid ("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", "lowercase hex");
  expect_invalid ("sha256:ba7816bf", "64 hex");
  expect_invalid ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0", "64 hex");
  expect_invalid ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "algorithm");
  expect_invalid ("sha256:", "64 hex");
  expect_invalid ("", "algorithm");
  expect_invalid ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a/", "hex");
}

static void
test_verify (void **state)
{
  (void) state;
  autodigest digest_ctx *d = digest_new ();
  autoerror kiln_error *err = NULL;
  digest_update (d, "abc", 3);
  assert_ok (digest_verify (d, D_ABC, &err), err);
  digest_update (d, "abd", 3);
  assert_true (digest_verify (d, D_ABC, &err) < 0);
  assert_non_null (strstr (err->msg, "mismatch"));
  assert_non_null (strstr (err->msg, D_ABC));
  assert_non_null (strstr (err->msg, "got sha256:"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_vectors),
    cmocka_unit_test (test_streaming),
    cmocka_unit_test (test_fd),
    cmocka_unit_test (test_validate),
    cmocka_unit_test (test_verify),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
