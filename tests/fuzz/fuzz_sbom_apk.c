/* fuzz_sbom_apk.c - the SBOM parser of apk's installed database on arbitrary
 * bytes: no crash, an error always has a message, every package kept has a
 * name and version of printable ASCII, and its purl can be made. */
#include <stddef.h>
#include <stdint.h>

#include "sbom_fuzz.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > (1 << 20))
    return 0;
  sbom_fuzz_parse (sbom_parse_apk_installed, (const char *) data, size, "/f");
  return 0;
}
