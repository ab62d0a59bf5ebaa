/* fuzz_sbom_go.c - Go binaries' build info on arbitrary bytes: the input
 * as an ELF file (sbom_elf_go_buildinfo through a memfd: no read outside
 * the file, a found section within it) and as a .go.buildinfo section
 * (sbom_parse_go_buildinfo); no crash, an error always has a message, every
 * package kept has a printable name and version, and its purl can be made. */
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sbom_fuzz.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > (1 << 20))
    return 0;
  sbom_fuzz_parse (sbom_parse_go_buildinfo, (const char *) data, size, "/f");
  int fd = memfd_create ("elf", MFD_CLOEXEC);
  if (fd < 0 || write (fd, data, size) != (ssize_t) size)
    abort ();
  char *sec = NULL;
  size_t len = 0;
  kiln_error *err = NULL;
  int r = sbom_elf_go_buildinfo (fd, size, &sec, &len, &err);
  close (fd);
  if (r < 0 && err == NULL)
    abort ();
  kiln_error_clear (&err);
  if (r > 0)
    {
      if (len > size)
        abort ();
      sbom_fuzz_parse (sbom_parse_go_buildinfo, sec, len, "/f");
      free (sec);
    }
  return 0;
}
