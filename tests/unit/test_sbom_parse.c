/* test_sbom_parse.c - the SBOM's package database parsers and purls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "build/sbom_parse.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

static const char DPKG[] =
  "Package: adduser\n"
  "Status: install ok installed\n"
  "Priority: important\n"
  "Architecture: all\n"
  "Version: 3.134\n"
  "Description: add and remove users\n"
  " This package includes: adduser\n"
  " .\n"
  " more: text with a colon\n"
  "\n"
  "Package: gone\n"
  "Status: deinstall ok config-files\n"
  "Version: 1.0\n"
  "\n"
  "Package: libc6\n"
  "Status: install ok installed\n"
  "Architecture: amd64\n"
  "Version: 2.36-9+deb12u4\n";

static void
test_dpkg (void **state)
{
  (void) state;
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_dpkg_status (DPKG, strlen (DPKG), "/var/lib/dpkg/status", &p, &err), 0);
  assert_int_equal (p.n, 2);
  assert_string_equal (p.v[0].name, "adduser");
  assert_string_equal (p.v[0].version, "3.134");
  assert_string_equal (p.v[0].arch, "all");
  assert_string_equal (p.v[1].name, "libc6");
  autofree char *purl = sbom_purl (&p.v[1], "debian");
  assert_string_equal (purl, "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64");
  sbom_pkgs_clear (&p);
  /* a line without ':' is an error; what came before stays */
  const char bad[] = "Package: a\nStatus: install ok installed\nVersion: 1\n\nnonsense\n";
  assert_true (sbom_parse_dpkg_status (bad, strlen (bad), "s", &p, &err) < 0);
  assert_non_null (err);
  kiln_error_clear (&err);
  assert_int_equal (p.n, 1);
  sbom_pkgs_clear (&p);
}

static void
test_dpkg_epoch_and_bytes (void **state)
{
  (void) state;
  const char s[] = "Package: x\nStatus: install ok installed\nVersion: 1:2.0~rc1\nArchitecture: amd64\n"
                   "\n\nPackage: y\xff\nStatus: install ok installed\nVersion: 1\n";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_dpkg_status (s, sizeof s - 1, "s", &p, &err), 0);
  assert_int_equal (p.n, 2);
  autofree char *purl = sbom_purl (&p.v[0], NULL);
  assert_string_equal (purl, "pkg:deb/debian/x@1%3A2.0~rc1?arch=amd64");
  assert_string_equal (p.v[1].name, "y?");
  sbom_pkgs_clear (&p);
}

static void
test_apk (void **state)
{
  (void) state;
  const char s[] = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nT:the musl c library\n\n"
                   "P:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\n";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_apk_installed (s, strlen (s), "/lib/apk/db/installed", &p, &err), 0);
  assert_int_equal (p.n, 2);
  assert_string_equal (p.v[0].license, "MIT");
  autofree char *purl = sbom_purl (&p.v[1], "alpine");
  assert_string_equal (purl, "pkg:apk/alpine/busybox@1.36.1-r5?arch=x86_64");
  sbom_pkgs_clear (&p);
}

static void
test_dist_info (void **state)
{
  (void) state;
  const char s[] = "Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.7.1\nLicense: PSF\n"
                   "\nName: not-a-header\n";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_dist_info (s, strlen (s), "m", &p, &err), 0);
  assert_int_equal (p.n, 1);
  assert_string_equal (p.v[0].license, "PSF");
  autofree char *purl = sbom_purl (&p.v[0], NULL);
  assert_string_equal (purl, "pkg:pypi/typing-extensions@4.7.1");
  sbom_pkgs_clear (&p);
}

static void
test_package_lock (void **state)
{
  (void) state;
  const char v3[] = "{\"lockfileVersion\":3,\"packages\":{\"\":{\"name\":\"app\",\"version\":\"1.0.0\"},"
                    "\"node_modules/@scope/a\":{\"version\":\"2.0.0\",\"license\":\"MIT\"},"
                    "\"node_modules/b/node_modules/c\":{\"version\":\"0.1.0\"},"
                    "\"node_modules/linked\":{\"link\":true,\"resolved\":\"x\"},"
                    "\"packages/ws\":{\"version\":\"9\"}}}";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_package_lock (v3, strlen (v3), "l", &p, &err), 0);
  assert_int_equal (p.n, 2);
  autofree char *purl = sbom_purl (&p.v[0], NULL);
  assert_string_equal (purl, "pkg:npm/%40scope/a@2.0.0");
  assert_string_equal (p.v[1].name, "c");
  sbom_pkgs_clear (&p);
  const char v1[] = "{\"lockfileVersion\":1,\"dependencies\":{\"a\":{\"version\":\"1.0.0\","
                    "\"dependencies\":{\"b\":{\"version\":\"2.0.0\"}}}}}";
  assert_int_equal (sbom_parse_package_lock (v1, strlen (v1), "l", &p, &err), 0);
  assert_int_equal (p.n, 2);
  assert_string_equal (p.v[1].name, "b");
  sbom_pkgs_clear (&p);
  assert_true (sbom_parse_package_lock ("[1]", 3, "l", &p, &err) < 0);
  kiln_error_clear (&err);
  assert_true (sbom_parse_package_lock ("{\"a\":1,\"a\":2}", 13, "l", &p, &err) < 0);
  kiln_error_clear (&err);
  const char pj[] = "{\"name\":\"left-pad\",\"version\":\"1.3.0\",\"license\":{\"type\":\"WTFPL\"}}";
  assert_int_equal (sbom_parse_package_json (pj, strlen (pj), "p", &p, &err), 0);
  assert_int_equal (p.n, 1);
  assert_string_equal (p.v[0].license, "WTFPL");
  sbom_pkgs_clear (&p);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_dpkg),
    cmocka_unit_test (test_dpkg_epoch_and_bytes),
    cmocka_unit_test (test_apk),
    cmocka_unit_test (test_dist_info),
    cmocka_unit_test (test_package_lock),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
