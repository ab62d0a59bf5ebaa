/* sandbox_binfmt.c - can a program of another architecture run here?
 * (see sandbox.h, sandbox_binfmt_check)
 *
 * The kernel runs a foreign ELF program through a binfmt_misc handler whose
 * magic and mask match the program's header (Debian's qemu-user-static
 * registers qemu-aarch64 and friends through binfmt-support). Inside a RUN
 * step the handler's interpreter path does not exist (the step's root is the
 * image), so the handler needs the F (fix-binary) flag: the kernel opened the
 * interpreter when it was registered. This file reads the handlers as
 * /proc/sys/fs/binfmt_misc lists them and matches each against the ELF header
 * an executable of the wanted architecture has.
 */
#include "sandbox/sandbox.h"
#include "registry/platform.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELF_HEAD 20 /* e_ident (16), e_type (2), e_machine (2) */

typedef struct elf_arch
{
  const char *arch;    /* OCI name */
  const char *qemu;    /* qemu-user's name (the handler Debian registers is qemu-NAME) */
  uint8_t elf_class;   /* 1: 32-bit, 2: 64-bit */
  uint8_t data;        /* 1: little endian, 2: big endian */
  uint16_t machine;
} elf_arch;

static const elf_arch elf_arches[] = {
  { "amd64", "x86_64", 2, 1, 62 },      { "arm64", "aarch64", 2, 1, 183 }, { "arm", "arm", 1, 1, 40 },
  { "386", "i386", 1, 1, 3 },           { "ppc64le", "ppc64le", 2, 1, 21 }, { "s390x", "s390x", 2, 2, 22 },
  { "riscv64", "riscv64", 2, 1, 243 },  { "mips64le", "mips64el", 2, 1, 8 }, { "loong64", "loongarch64", 2, 1, 258 },
};

static const elf_arch *
find_arch (const char *arch)
{
  for (size_t i = 0; i < ARRAY_SIZE (elf_arches); i++)
    if (strcmp (elf_arches[i].arch, arch) == 0)
      return &elf_arches[i];
  return NULL;
}

/* The first ELF_HEAD bytes of an executable (ET_EXEC) of a. */
static void
elf_head (const elf_arch *a, uint8_t h[ELF_HEAD])
{
  memset (h, 0, ELF_HEAD);
  h[0] = 0x7f, h[1] = 'E', h[2] = 'L', h[3] = 'F';
  h[4] = a->elf_class;
  h[5] = a->data;
  h[6] = 1; /* EV_CURRENT */
  bool le = a->data == 1;
  h[le ? 16 : 17] = 2; /* ET_EXEC */
  h[le ? 18 : 19] = (uint8_t) (a->machine & 0xff);
  h[le ? 19 : 18] = (uint8_t) (a->machine >> 8);
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Hex string s (up to the line's end) into out; the byte count, or -1. */
static int
unhex (const char *s, uint8_t *out, size_t max)
{
  size_t n = 0;
  for (; s[0] && s[0] != '\n'; s += 2)
    {
      int hi = hexval (s[0]), lo = s[1] ? hexval (s[1]) : -1;
      if (hi < 0 || lo < 0 || n >= max)
        return -1;
      out[n++] = (uint8_t) (hi << 4 | lo);
    }
  return (int) n;
}

typedef enum
{
  HANDLER_NONE,      /* does not match */
  HANDLER_DISABLED,  /* matches, switched off */
  HANDLER_NO_FIX,    /* matches, without the F flag */
  HANDLER_OK,
} handler_state;

/* One handler file's text against head; *interp gets its interpreter. */
static handler_state
match_handler (const char *text, const uint8_t head[ELF_HEAD], char **interp)
{
  bool enabled = strncmp (text, "enabled\n", 8) == 0, fix = false;
  long offset = 0;
  uint8_t magic[128], mask[128];
  int nmagic = -1, nmask = -1;
  for (const char *l = text; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL)
    {
      if (strncmp (l, "flags: ", 7) == 0)
        fix = strcspn (l + 7, "F\n") < strcspn (l + 7, "\n");
      else if (strncmp (l, "offset ", 7) == 0)
        offset = strtol (l + 7, NULL, 10);
      else if (strncmp (l, "magic ", 6) == 0)
        nmagic = unhex (l + 6, magic, sizeof magic);
      else if (strncmp (l, "mask ", 5) == 0)
        nmask = unhex (l + 5, mask, sizeof mask);
      else if (strncmp (l, "interpreter ", 12) == 0 && !*interp)
        *interp = xstrndup (l + 12, strcspn (l + 12, "\n"));
    }
  if (nmagic <= 0 || offset < 0 || offset + nmagic > ELF_HEAD)
    return HANDLER_NONE;
  for (int i = 0; i < nmagic; i++)
    {
      uint8_t m = i < nmask ? mask[i] : 0xff;
      if ((head[offset + i] & m) != (magic[i] & m))
        return HANDLER_NONE;
    }
  if (!enabled)
    return HANDLER_DISABLED;
  return fix ? HANDLER_OK : HANDLER_NO_FIX;
}

/* The best handler below dirfd for head: OK beats NO_FIX beats DISABLED. */
static int
best_handler (int dirfd, const char *dir, const uint8_t head[ELF_HEAD], char **name, char **interp,
              handler_state *out, kiln_error **err)
{
  int fd = dup (dirfd);
  if (fd < 0)
    return kiln_error_make (err, errno, "dup '%s'", dir);
  DIR *d = fdopendir (fd);
  if (!d)
    {
      int e = errno;
      close (fd);
      return kiln_error_make (err, e, "read '%s'", dir);
    }
  *out = HANDLER_NONE;
  struct dirent *de;
  while ((de = readdir (d)))
    {
      if (de->d_name[0] == '.' || strcmp (de->d_name, "register") == 0 || strcmp (de->d_name, "status") == 0)
        continue;
      autofree char *text = NULL;
      size_t len;
      autoerror kiln_error *rerr = NULL;
      if (fs_read_file_at (dirfd, de->d_name, 4096, &text, &len, &rerr) < 0)
        continue; /* removed meanwhile, or not a handler */
      autofree char *in = NULL;
      handler_state h = match_handler (text, head, &in);
      if (h > *out)
        {
          *out = h;
          free (*name);
          free (*interp);
          *name = xstrdup (de->d_name);
          *interp = steal_pointer (&in);
        }
    }
  closedir (d);
  return 0;
}

int
sandbox_binfmt_check_dir (const char *dir, const char *arch, kiln_error **err)
{
  const elf_arch *a = find_arch (arch);
  if (!a)
    return kiln_error_make (err, ENOEXEC, "RUN for linux/%s: kiln knows no ELF machine for '%s', so it cannot "
                            "check for a binfmt_misc handler", arch, arch);
  const char *how = "install Debian's qemu-user-static and binfmt-support (apt-get install qemu-user-static "
                    "binfmt-support), which register the handlers with the F flag, or, as root, mount binfmt_misc "
                    "(mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc) and run";
  autoclose int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  autofree char *status = NULL;
  size_t len;
  autoerror kiln_error *serr = NULL;
  if (dfd < 0 || fs_read_file_at (dfd, "status", 64, &status, &len, &serr) < 0)
    return kiln_error_make (err, ENOEXEC, "RUN steps for linux/%s need binfmt_misc emulation, and binfmt_misc is not "
                            "mounted at '%s': %s update-binfmts --enable qemu-%s", arch, dir, how, a->qemu);
  if (strncmp (status, "enabled", 7) != 0)
    return kiln_error_make (err, ENOEXEC, "RUN steps for linux/%s need binfmt_misc emulation, and binfmt_misc is "
                            "switched off ('%s/status'): as root, echo 1 > %s/status", arch, dir, dir);
  uint8_t head[ELF_HEAD];
  elf_head (a, head);
  autofree char *name = NULL, *interp = NULL;
  handler_state h = HANDLER_NONE;
  if (best_handler (dfd, dir, head, &name, &interp, &h, err) < 0)
    return -1;
  switch (h)
    {
    case HANDLER_OK:
      return 0;
    case HANDLER_NO_FIX:
      return kiln_error_make (err, ENOEXEC, "RUN steps for linux/%s: the binfmt_misc handler '%s/%s' has no F "
                              "(fix-binary) flag, so its interpreter '%s' would be looked up inside the step's root, "
                              "where it does not exist: register it with the F flag (Debian's qemu-user-static does: "
                              "update-binfmts --disable %s, then --enable qemu-%s)",
                              arch, dir, name, interp ? interp : "?", name, a->qemu);
    case HANDLER_DISABLED:
      return kiln_error_make (err, ENOEXEC, "RUN steps for linux/%s: the binfmt_misc handler '%s/%s' is disabled: "
                              "as root, update-binfmts --enable qemu-%s (or echo 1 > %s/%s; Debian's "
                              "qemu-user-static and binfmt-support register it)",
                              arch, dir, name, a->qemu, dir, name);
    case HANDLER_NONE:
      break;
    }
  return kiln_error_make (err, ENOEXEC, "RUN steps for linux/%s need binfmt_misc emulation on this host, and no "
                          "handler in '%s' runs %s programs: %s update-binfmts --enable qemu-%s",
                          arch, dir, a->qemu, how, a->qemu);
}

int
sandbox_binfmt_check (const char *arch, kiln_error **err)
{
  const char *os, *host, *variant;
  platform_host (&os, &host, &variant);
  if (strcmp (arch, host) == 0 || (strcmp (host, "amd64") == 0 && strcmp (arch, "386") == 0))
    return 0; /* the kernel runs them itself */
  return sandbox_binfmt_check_dir ("/proc/sys/fs/binfmt_misc", arch, err);
}
