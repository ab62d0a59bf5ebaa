/* fuzz_sbom_dist_info.c - the SBOM parser of a Python *.dist-info METADATA on arbitrary
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
  sbom_fuzz_parse (sbom_parse_dist_info, (const char *) data, size, "/f");
  return 0;
}
