/* fuzz_sbom_go.c - Go binaries' build info on arbitrary bytes: the input
 * as an ELF file (sbom_elf_go_buildinfo through a memfd: no read outside
 * the file, a found section within it) and as a .go.buildinfo section
 * (sbom_parse_go_buildinfo); no crash, an error always has a message, every
 * package kept has a printable name and version, and its purl can be made. */
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
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
  int r = sbom_parse_go_buildinfo (s, size, "/f", &p, &err);
  if (r < 0 && err == NULL)
    abort ();
  kiln_error_clear (&err);
  check (r, &p);
  int fd = memfd_create ("elf", MFD_CLOEXEC);
  if (fd < 0 || write (fd, data, size) != (ssize_t) size)
    abort ();
  char *sec = NULL;
  size_t len = 0;
  r = sbom_elf_go_buildinfo (fd, size, &sec, &len, &err);
  close (fd);
  if (r < 0 && err == NULL)
    abort ();
  kiln_error_clear (&err);
  if (r > 0)
    {
      if (len > size)
        abort ();
      r = sbom_parse_go_buildinfo (sec, len, "/f", &p, &err);
      kiln_error_clear (&err);
      check (r, &p);
      free (sec);
    }
  return 0;
}
