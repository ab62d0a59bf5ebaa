/* tracer_exec.c - execve and execveat. The kernel would resolve a
 * program's ELF interpreter (PT_INTERP) and a script's #! interpreter
 * against the host's root, so the tracer does what binfmt_elf and
 * binfmt_script do, in the guest:
 *  - "#!interp [arg]" (first line, at most 255 bytes after "#!", kernel
 *    rules: one optional argument, surrounding blanks dropped):
 *    argv becomes [interp, (arg), the script's path as given, argv[1..]]
 *    and interp is executed in turn (up to 4 levels, then ELOOP, as the
 *    kernel);
 *  - a dynamic ELF: the kernel executes the translated interpreter (ld.so)
 *    with [interp, (--argv0 ARGV0 when this ld.so knows the option: glibc
 *    2.33+, found once per file), the program's guest path, argv[1..]];
 *    ld.so then opens the program and its libraries through the tracer;
 *  - a static ELF: the kernel executes the translated path.
 * The new argv array and strings go below the tracee's stack pointer (the
 * old strings are reused), envp is kept.
 * Known limits: for a dynamic program /proc/self/exe and AT_EXECFN name
 * the loader (host path), and argv[0] is the program path where ld.so
 * lacks --argv0; 32-bit and foreign-architecture ELF files fail ENOEXEC
 * (the filter admits only native system calls). */
#include "sandbox/sandbox.h"
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_DEPTH 4
#define MAX_ARGS (1 << 20)

#if defined(__x86_64__)
#define NATIVE_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define NATIVE_MACHINE EM_AARCH64
#endif

/* An argv entry: a string in the tracee (addr) or a new one (str). */
typedef struct item
{
  unsigned long addr;
  char *str;
} item;

typedef struct args
{
  item *v;
  size_t n;
} args;

static void
args_insert (args *a, size_t at, unsigned long addr, const char *str)
{
  a->v = xreallocarray (a->v, a->n + 1, sizeof *a->v);
  memmove (a->v + at + 1, a->v + at, (a->n - at) * sizeof *a->v);
  a->v[at] = (item){ addr, str ? xstrdup (str) : NULL };
  a->n++;
}

static void
args_remove_first (args *a)
{
  if (a->n == 0)
    return;
  free (a->v[0].str);
  memmove (a->v, a->v + 1, (a->n - 1) * sizeof *a->v);
  a->n--;
}

static void
args_free (args *a)
{
  for (size_t i = 0; i < a->n; i++)
    free (a->v[i].str);
  free (a->v);
}

static int
read_argv (pid_t tid, unsigned long addr, args *a)
{
  memset (a, 0, sizeof *a);
  if (addr == 0)
    return 0;
  for (;;)
    {
      unsigned long chunk[64];
      if (tracer_mem_read (tid, addr + a->n * sizeof (unsigned long), chunk, sizeof chunk) < 0
          && tracer_mem_read (tid, addr + a->n * sizeof (unsigned long), chunk, sizeof chunk[0]) < 0)
        return -EFAULT;
      for (size_t i = 0; i < ARRAY_SIZE (chunk); i++)
        {
          if (chunk[i] == 0)
            return 0;
          if (a->n >= MAX_ARGS)
            return -E2BIG;
          a->v = xreallocarray (a->v, a->n + 1, sizeof *a->v);
          a->v[a->n++] = (item){ chunk[i], NULL };
        }
    }
}

/* What a file is. */
typedef struct binfmt
{
  enum { BF_STATIC, BF_DYNAMIC, BF_SCRIPT } kind;
  char *interp;   /* DYNAMIC: PT_INTERP; SCRIPT: #! interpreter */
  char *arg;      /* SCRIPT: its optional argument */
} binfmt;

static int
parse_script (const char *buf, size_t n, binfmt *b)
{
  /* The kernel reads 256 bytes; the line ends at '\n' or there. */
  char line[256];
  size_t len = n < sizeof line - 1 ? n : sizeof line - 1;
  memcpy (line, buf, len);
  line[len] = '\0';
  char *nl = strchr (line + 2, '\n');
  if (nl)
    *nl = '\0';
  char *s = line + 2;
  while (*s == ' ' || *s == '\t')
    s++;
  char *e = s + strcspn (s, " \t");
  if (e == s)
    return -ENOEXEC;
  if (!nl && *e == '\0' && n >= sizeof line - 1)
    return -ENOEXEC;   /* the interpreter's name does not fit */
  b->kind = BF_SCRIPT;
  b->interp = xstrndup (s, (size_t) (e - s));
  s = e + strspn (e, " \t");
  size_t alen = strlen (s);
  while (alen > 0 && (s[alen - 1] == ' ' || s[alen - 1] == '\t'))
    alen--;
  b->arg = alen ? xstrndup (s, alen) : NULL;
  return 0;
}

static int
parse_elf (int fd, const Elf64_Ehdr *eh, binfmt *b)
{
  if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != NATIVE_MACHINE)
    return -ENOEXEC;
  if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
    return -ENOEXEC;
  b->kind = BF_STATIC;
  for (unsigned i = 0; i < eh->e_phnum && i < 512; i++)
    {
      Elf64_Phdr ph;
      if (pread (fd, &ph, sizeof ph, (off_t) (eh->e_phoff + (Elf64_Off) i * eh->e_phentsize)) != sizeof ph)
        return -EIO;
      if (ph.p_type != PT_INTERP)
        continue;
      if (ph.p_filesz < 2 || ph.p_filesz > PATH_MAX)
        return -ENOEXEC;
      char *s = xzalloc (ph.p_filesz + 1);
      if (pread (fd, s, ph.p_filesz, (off_t) ph.p_offset) != (ssize_t) ph.p_filesz)
        {
          free (s);
          return -EIO;
        }
      b->kind = BF_DYNAMIC;
      b->interp = s;
      return 0;
    }
  return 0;
}

/* Open an O_PATH fd of ours for reading (through its magic link). */
static int
reopen_read (int opath)
{
  char link[64];
  snprintf (link, sizeof link, "/proc/self/fd/%d", opath);
  int fd = open (link, O_RDONLY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

/* Check a resolved program like execve's permission checks, then read
 * what kind it is. */
static int
classify (const tracer_path *p, binfmt *b)
{
  memset (b, 0, sizeof *b);
  if (p->fd < 0)
    return -ENOENT;
  struct stat st;
  if (fstat (p->fd, &st) < 0)
    return -errno;
  if (!S_ISREG (st.st_mode) || !(st.st_mode & 0111))
    return -EACCES;
  int fd = reopen_read (p->fd);
  if (fd < 0)
    return fd;
  char buf[256];
  ssize_t n = pread (fd, buf, sizeof buf, 0);
  int r;
  if (n < 0)
    r = -errno;
  else if (n >= 2 && buf[0] == '#' && buf[1] == '!')
    r = parse_script (buf, (size_t) n, b);
  else if ((size_t) n >= sizeof (Elf64_Ehdr) && memcmp (buf, ELFMAG, SELFMAG) == 0)
    r = parse_elf (fd, (const Elf64_Ehdr *) buf, b);
  else
    r = -ENOEXEC;
  close (fd);
  return r;
}

static void
binfmt_clear (binfmt *b)
{
  free (b->interp);
  free (b->arg);
  memset (b, 0, sizeof *b);
}

/* Whether this ld.so takes --argv0 (glibc >= 2.33): the option's name in
 * the file, looked up once per inode. */
static bool
ldso_has_argv0 (tracer *t, int opath)
{
  struct stat st;
  if (fstat (opath, &st) < 0)
    return false;
  for (size_t i = 0; i < t->n_ldsos; i++)
    if (t->ldsos[i].dev == st.st_dev && t->ldsos[i].ino == st.st_ino)
      return t->ldsos[i].argv0;
  bool found = false;
  int fd = reopen_read (opath);
  if (fd >= 0 && st.st_size > 0 && st.st_size < (64 << 20))
    {
      void *m = mmap (NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED)
        {
          found = memmem (m, (size_t) st.st_size, "--argv0", 8) != NULL;
          munmap (m, (size_t) st.st_size);
        }
    }
  if (fd >= 0)
    close (fd);
  t->ldsos = xreallocarray (t->ldsos, t->n_ldsos + 1, sizeof *t->ldsos);
  t->ldsos[t->n_ldsos++] = (struct ldso_rec){ st.st_dev, st.st_ino, found };
  return found;
}

/* Write argv to the tracee: the array's address, or 0 (errno in *e). */
static unsigned long
put_argv (tracer_call *c, args *a, int *e)
{
  unsigned long *arr = xcalloc (a->n + 1, sizeof *arr);
  for (size_t i = 0; i < a->n; i++)
    {
      arr[i] = a->v[i].addr;
      if (a->v[i].str)
        {
          arr[i] = tracer_scratch_put (&c->scratch, a->v[i].str, strlen (a->v[i].str) + 1, e);
          if (!arr[i])
            {
              free (arr);
              return 0;
            }
        }
    }
  unsigned long at = tracer_scratch_put (&c->scratch, arr, (a->n + 1) * sizeof *arr, e);
  free (arr);
  return at;
}

/* Follow scripts and interpreters from the resolved program *p (taken);
 * on success *host is what the kernel executes and a holds its argv.
 * path_addr/path_str: how the caller named the program. */
static int
plan (tracer_call *c, tracer_path *p, unsigned long path_addr, const char *path_str, args *a, char **host)
{
  autofree char *cwd = NULL;
  autofree char *name = NULL;
  int r = 0;
  for (int depth = 0;; depth++)
    {
      binfmt b;
      r = classify (p, &b);
      if (r < 0)
        break;
      if (b.kind == BF_STATIC)
        {
          *host = xstrdup (p->host);
          break;
        }
      if (b.kind == BF_DYNAMIC)
        {
          tracer_path ip;
          if (!cwd)
            cwd = tracer_guest_cwd (c->t, c->te->tid);
          r = tracer_resolve (&c->t->fs, cwd ? cwd : "/", b.interp, TR_FOLLOW, &ip);
          if (r == 0 && ip.fd < 0)
            r = -ENOENT;
          if (r == 0)
            {
              /* [interp, (--argv0 ARGV0), program, argv[1..]] */
              size_t at = 1;
              if (a->n == 0)   /* execve with an empty argv */
                args_insert (a, 0, path_str ? 0 : path_addr, path_str);
              if (a->n > 0 && ldso_has_argv0 (c->t, ip.fd))
                {
                  args_insert (a, 1, 0, "--argv0");
                  args_insert (a, 2, a->v[0].addr, a->v[0].str);
                  at = 3;
                }
              args_insert (a, at, path_str ? 0 : path_addr, path_str);
              args_remove_first (a);
              args_insert (a, 0, 0, b.interp);
              *host = xstrdup (ip.host);
            }
          tracer_path_clear (&ip);
          binfmt_clear (&b);
          break;
        }
      /* a script: [interp, (arg), script path, argv[1..]] */
      if (depth >= MAX_DEPTH)
        {
          binfmt_clear (&b);
          r = -ELOOP;
          break;
        }
      if (a->n > 0)
        args_remove_first (a);
      args_insert (a, 0, path_str ? 0 : path_addr, path_str);
      if (b.arg)
        args_insert (a, 0, 0, b.arg);
      args_insert (a, 0, 0, b.interp);
      if (!cwd)
        cwd = tracer_guest_cwd (c->t, c->te->tid);
      tracer_path_clear (p);
      r = tracer_resolve (&c->t->fs, cwd ? cwd : "/", b.interp, TR_FOLLOW, p);
      /* the interpreter is named by its string from now on */
      path_addr = 0;
      free (name);
      name = xstrdup (b.interp);
      path_str = name;
      binfmt_clear (&b);
      if (r < 0)
        break;
    }
  return r;
}

tracer_action
tracer_exec (tracer_call *c)
{
  bool at = c->sc == TSC_EXECVEAT;
  int dirfd = at ? (int) tracer_arg (&c->regs, 0) : AT_FDCWD;
  int flags = at ? (int) tracer_arg (&c->regs, 4) : 0;
  int pa = at ? 1 : 0;
  unsigned long path_addr = tracer_arg (&c->regs, pa), argv_addr = tracer_arg (&c->regs, pa + 1);
  tracer_path p;
  int r = tracer_resolve_at (c, dirfd, path_addr, (flags & AT_SYMLINK_NOFOLLOW) ? TR_NOSYMLINKS : TR_FOLLOW,
                             (flags & AT_EMPTY_PATH) != 0, &p);
  args a = { NULL, 0 };
  autofree char *host = NULL;
  /* A file kiln binds into the step (a RUN heredoc's script at
   * /dev/pipes/NAME) is a program like any other: its #! line names a
   * guest interpreter. Only /proc's (/proc/self/exe and the like) are the
   * kernel's. */
  bool kernels = r == 0 && p.bind && strncmp (p.guest, "/proc/", 6) == 0;
  if (r == 0 && p.bind && !kernels && p.fd < 0)
    {
      p.fd = open (p.host, O_PATH | O_CLOEXEC);
      if (p.fd < 0)
        r = -errno;
    }
  if (r == 0 && kernels)
    host = xstrdup (p.host);
  else if (r == 0 && (r = read_argv (c->te->tid, argv_addr, &a)) == 0)
    {
      char first = 0;
      tracer_mem_read (c->te->tid, path_addr, &first, 1);
      /* an fd (AT_EMPTY_PATH) is named by its guest path */
      r = plan (c, &p, path_addr, first ? NULL : p.guest, &a, &host);
    }
  int e = 0;
  if (r == 0 && !kernels)
    {
      unsigned long av = put_argv (c, &a, &e);
      if (!av)
        r = e == EFAULT ? -E2BIG : -e;
      else
        tracer_set_arg (&c->regs, pa + 1, av);
    }
  if (r == 0)
    r = tracer_set_path_arg (c, pa, host);
  if (r == 0 && at)
    {
      tracer_set_arg (&c->regs, 0, (unsigned long) AT_FDCWD);
      tracer_set_arg (&c->regs, 4, 0);
    }
  if (r < 0)
    tracer_skip (&c->regs, r);
  args_free (&a);
  tracer_path_clear (&p);
  return TR_CONTINUE;
}

int
tracer_find_program (const tracer_fs *fs, const char *cwd, const char *argv0, char *const *env, char **out)
{
  if (strchr (argv0, '/'))
    {
      *out = xstrdup (argv0);
      return 0;
    }
  const char *path = SANDBOX_DEFAULT_PATH;
  for (char *const *e = env; e && *e; e++)
    if (strncmp (*e, "PATH=", 5) == 0)
      path = *e + 5;
  int r = -ENOENT;
  for (const char *s = path;; s++)
    {
      const char *end = strchrnul (s, ':');
      autofree char *cand = xasprintf ("%.*s%s%s", (int) (end - s), s, end == s ? "" : "/", argv0);
      tracer_path p;
      if (tracer_resolve (fs, cwd, cand, TR_FOLLOW, &p) == 0)
        {
          struct stat st;
          bool ok = (p.fd >= 0 && fstat (p.fd, &st) == 0 && S_ISREG (st.st_mode) && (st.st_mode & 0111));
          if (p.fd >= 0 && !ok)
            r = -EACCES;
          tracer_path_clear (&p);
          if (ok)
            {
              *out = steal_pointer (&cand);
              return 0;
            }
        }
      if (*end == '\0')
        break;
      s = end;
    }
  return r;
}
