/* platform.c - OCI platforms (see platform.h). */
#include "registry/platform.h"

#include <string.h>

#include "util/alloc.h"

void
platform_host (const char **os, const char **arch, const char **variant)
{
  *os = "linux";
  *variant = NULL;
#if defined(__x86_64__)
  *arch = "amd64";
#elif defined(__aarch64__)
  *arch = "arm64";
#elif defined(__arm__)
  *arch = "arm";
#if defined(__ARM_ARCH) && __ARM_ARCH >= 7
  *variant = "v7";
#else
  *variant = "v6";
#endif
#elif defined(__i386__)
  *arch = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  *arch = "ppc64le";
#elif defined(__s390x__)
  *arch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  *arch = "riscv64";
#else
  *arch = "unknown";
#endif
}

void
platform_default (const char **os, const char **arch, const char **variant)
{
  const char *hos, *harch, *hvar;
  platform_host (&hos, &harch, &hvar);
  if (!*os)
    *os = hos;
  if (!*arch)
    {
      *arch = harch;
      if (!*variant)
        *variant = hvar;
    }
}

bool
platform_variant_equal (const char *arch, const char *a, const char *b)
{
  if (strcmp (arch, "arm64") == 0)
    {
      if (!a)
        a = "v8";
      if (!b)
        b = "v8";
    }
  if (!a || !b)
    return a == b;
  return strcmp (a, b) == 0;
}

int
platform_parse (const char *s, char **os, char **arch, char **variant, kiln_error **err)
{
  autostrv char **parts = NULL;
  const char *p = s;
  for (;;)
    {
      const char *slash = strchr (p, '/');
      autofree char *part = slash ? xstrndup (p, (size_t) (slash - p)) : xstrdup (p);
      if (part[0] == '\0')
        return kiln_error_make (err, 0, "invalid platform '%s': expected OS/ARCH[/VARIANT]", s);
      for (char *c = part; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
          return kiln_error_make (err, 0, "invalid platform '%s': unexpected character", s);
      strv_push (&parts, part);
      if (!slash)
        break;
      p = slash + 1;
    }
  size_t n = strv_len (parts);
  if (n < 2 || n > 3)
    return kiln_error_make (err, 0, "invalid platform '%s': expected OS/ARCH[/VARIANT]", s);
  *os = xstrdup (parts[0]);
  *arch = xstrdup (parts[1]);
  *variant = n == 3 ? xstrdup (parts[2]) : NULL;
  return 0;
}
