/* fuzz_sbom_apk.c - the SBOM parser of apk's installed database on arbitrary
 * bytes: no crash, an error always has a message, every package kept has a
 * name and version of printable ASCII, and its purl can be made. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build/sbom_parse.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
printable (const char *s)
{
  for (; s && *s; s++)
    if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
      abort ();
}

static void
check (int r, sbom_pkgs *p)
{
  (void) r;
  for (size_t i = 0; i < p->n; i++)
    {
      if (!p->v[i].name || !p->v[i].version)
        abort ();
      printable (p->v[i].name);
      printable (p->v[i].version);
      printable (p->v[i].arch);
      printable (p->v[i].license);
      char *purl = sbom_purl (&p->v[i], "debian");
      printable (purl);
      free (purl);
    }
  sbom_pkgs_clear (p);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > (1 << 20))
    return 0;
  const char *s = (const char *) data;
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  int r = sbom_parse_apk_installed (s, size, "/f", &p, &err);
  if (r < 0 && err == NULL)
    abort ();
  kiln_error_clear (&err);
  check (r, &p);

  kiln_error_clear (&err);
  return 0;
}
