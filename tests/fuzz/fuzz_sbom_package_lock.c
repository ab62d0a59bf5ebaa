/* fuzz_sbom_package_lock.c - the SBOM parser of npm's package-lock.json (and node_modules package.json) on arbitrary
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
  sbom_fuzz_parse (sbom_parse_package_lock, (const char *) data, size, "/f");
  sbom_fuzz_parse (sbom_parse_package_json, (const char *) data, size, "/p");
  return 0;
}
