/* sbom_fuzz.h - what the fuzz_sbom_*.c targets share: run one of the SBOM
 * parsers on arbitrary bytes and check the contract (no crash, an error
 * always has a message, every package kept has a name and version of
 * printable ASCII, and its purl can be made). Included by those files only. */
#ifndef KILN_TESTS_FUZZ_SBOM_FUZZ_H
#define KILN_TESTS_FUZZ_SBOM_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build/sbom_parse.h"
#include "util/alloc.h"

typedef int (*sbom_fuzz_parser) (const char *data, size_t len, const char *path, sbom_pkgs *out,
                                 kiln_error **err);

static void
sbom_fuzz_printable (const char *s)
{
  for (; s && *s; s++)
    if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
      abort ();
}

/* Checks and clears p. */
static void
sbom_fuzz_check (sbom_pkgs *p)
{
  for (size_t i = 0; i < p->n; i++)
    {
      if (!p->v[i].name || !p->v[i].version)
        abort ();
      sbom_fuzz_printable (p->v[i].name);
      sbom_fuzz_printable (p->v[i].version);
      sbom_fuzz_printable (p->v[i].arch);
      sbom_fuzz_printable (p->v[i].license);
      char *purl = sbom_purl (&p->v[i], "debian");
      sbom_fuzz_printable (purl);
      free (purl);
    }
  sbom_pkgs_clear (p);
}

/* parse on data (path is what its messages name). */
static void
sbom_fuzz_parse (sbom_fuzz_parser parse, const char *data, size_t size, const char *path)
{
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  int r = parse (data, size, path, &p, &err);
  if (r < 0 && err == NULL)
    abort ();
  kiln_error_clear (&err);
  sbom_fuzz_check (&p);
}

#endif
