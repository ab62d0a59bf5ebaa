/* tracer_arch.c - what differs between architectures: the syscall numbers
 * of the calls the tracer traps or refuses, and the registers of a stopped
 * tracee (x86_64: PTRACE_GETREGS/SETREGS; aarch64: NT_PRSTATUS plus
 * NT_ARM_SYSTEM_CALL, the only way to change the syscall number there).
 * The filter is built for the native architecture only, but both tables
 * are kept so that aarch64 is right by construction. Also the tracee's
 * memory (process_vm_readv/writev, /proc/PID/mem as the fallback). */
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

typedef struct sysent
{
  const char *name;
  long x86_64;
  long aarch64;   /* asm-generic numbers: no open, stat, mkdir ... */
} sysent;

/* Numbers from <asm/unistd_64.h> and <asm-generic/unistd.h>; calls newer
 * than Debian 12's headers (fchmodat2, statmount, *xattrat, file_*attr)
 * have one number on every architecture. */
static const sysent table[TSC_COUNT] = {
  [TSC_OPEN] = { "open", 2, -1 },
  [TSC_OPENAT] = { "openat", 257, 56 },
  [TSC_OPENAT2] = { "openat2", 437, 437 },
  [TSC_CREAT] = { "creat", 85, -1 },
  [TSC_TRUNCATE] = { "truncate", 76, 45 },
  [TSC_STAT] = { "stat", 4, -1 },
  [TSC_LSTAT] = { "lstat", 6, -1 },
  [TSC_NEWFSTATAT] = { "newfstatat", 262, 79 },
  [TSC_STATX] = { "statx", 332, 291 },
  [TSC_FSTAT] = { "fstat", 5, 80 },
  [TSC_ACCESS] = { "access", 21, -1 },
  [TSC_FACCESSAT] = { "faccessat", 269, 48 },
  [TSC_FACCESSAT2] = { "faccessat2", 439, 439 },
  [TSC_READLINK] = { "readlink", 89, -1 },
  [TSC_READLINKAT] = { "readlinkat", 267, 78 },
  [TSC_CHDIR] = { "chdir", 80, 49 },
  [TSC_GETCWD] = { "getcwd", 79, 17 },
  [TSC_MKDIR] = { "mkdir", 83, -1 },
  [TSC_MKDIRAT] = { "mkdirat", 258, 34 },
  [TSC_MKNOD] = { "mknod", 133, -1 },
  [TSC_MKNODAT] = { "mknodat", 259, 33 },
  [TSC_RMDIR] = { "rmdir", 84, -1 },
  [TSC_UNLINK] = { "unlink", 87, -1 },
  [TSC_UNLINKAT] = { "unlinkat", 263, 35 },
  [TSC_RENAME] = { "rename", 82, -1 },
  [TSC_RENAMEAT] = { "renameat", 264, 38 },
  [TSC_RENAMEAT2] = { "renameat2", 316, 276 },
  [TSC_LINK] = { "link", 86, -1 },
  [TSC_LINKAT] = { "linkat", 265, 37 },
  [TSC_SYMLINK] = { "symlink", 88, -1 },
  [TSC_SYMLINKAT] = { "symlinkat", 266, 36 },
  [TSC_CHMOD] = { "chmod", 90, -1 },
  [TSC_FCHMOD] = { "fchmod", 91, 52 },
  [TSC_FCHMODAT] = { "fchmodat", 268, 53 },
  [TSC_FCHMODAT2] = { "fchmodat2", 452, 452 },
  [TSC_CHOWN] = { "chown", 92, -1 },
  [TSC_FCHOWN] = { "fchown", 93, 55 },
  [TSC_LCHOWN] = { "lchown", 94, -1 },
  [TSC_FCHOWNAT] = { "fchownat", 260, 54 },
  [TSC_UTIME] = { "utime", 132, -1 },
  [TSC_UTIMES] = { "utimes", 235, -1 },
  [TSC_FUTIMESAT] = { "futimesat", 261, -1 },
  [TSC_UTIMENSAT] = { "utimensat", 280, 88 },
  [TSC_EXECVE] = { "execve", 59, 221 },
  [TSC_EXECVEAT] = { "execveat", 322, 281 },
  [TSC_STATFS] = { "statfs", 137, 43 },
  [TSC_INOTIFY_ADD_WATCH] = { "inotify_add_watch", 254, 27 },
  [TSC_GETXATTR] = { "getxattr", 191, 8 },
  [TSC_LGETXATTR] = { "lgetxattr", 192, 9 },
  [TSC_FGETXATTR] = { "fgetxattr", 193, 10 },
  [TSC_LISTXATTR] = { "listxattr", 194, 11 },
  [TSC_LLISTXATTR] = { "llistxattr", 195, 12 },
  [TSC_FLISTXATTR] = { "flistxattr", 196, 13 },
  [TSC_SETXATTR] = { "setxattr", 188, 5 },
  [TSC_LSETXATTR] = { "lsetxattr", 189, 6 },
  [TSC_FSETXATTR] = { "fsetxattr", 190, 7 },
  [TSC_REMOVEXATTR] = { "removexattr", 197, 14 },
  [TSC_LREMOVEXATTR] = { "lremovexattr", 198, 15 },
  [TSC_FREMOVEXATTR] = { "fremovexattr", 199, 16 },
  [TSC_BIND] = { "bind", 49, 200 },
  [TSC_CONNECT] = { "connect", 42, 203 },
  [TSC_GETUID] = { "getuid", 102, 174 },
  [TSC_GETEUID] = { "geteuid", 107, 175 },
  [TSC_GETGID] = { "getgid", 104, 176 },
  [TSC_GETEGID] = { "getegid", 108, 177 },
  [TSC_GETRESUID] = { "getresuid", 118, 148 },
  [TSC_GETRESGID] = { "getresgid", 120, 150 },
  [TSC_GETGROUPS] = { "getgroups", 115, 158 },
  [TSC_SETUID] = { "setuid", 105, 146 },
  [TSC_SETGID] = { "setgid", 106, 144 },
  [TSC_SETREUID] = { "setreuid", 113, 145 },
  [TSC_SETREGID] = { "setregid", 114, 143 },
  [TSC_SETRESUID] = { "setresuid", 117, 147 },
  [TSC_SETRESGID] = { "setresgid", 119, 149 },
  [TSC_SETFSUID] = { "setfsuid", 122, 151 },
  [TSC_SETFSGID] = { "setfsgid", 123, 152 },
  [TSC_SETGROUPS] = { "setgroups", 116, 159 },
  [TSC_KILL] = { "kill", 62, 129 },
  [TSC_TKILL] = { "tkill", 200, 130 },
  [TSC_TGKILL] = { "tgkill", 234, 131 },
  [TSC_PIDFD_SEND_SIGNAL] = { "pidfd_send_signal", 424, 424 },
  [TSC_RT_SIGQUEUEINFO] = { "rt_sigqueueinfo", 129, 138 },
  [TSC_RT_TGSIGQUEUEINFO] = { "rt_tgsigqueueinfo", 297, 240 },
  [TSC_CHROOT] = { "chroot", 161, 51 },
  [TSC_MOUNT] = { "mount", 165, 40 },
  [TSC_UMOUNT2] = { "umount2", 166, 39 },
  [TSC_PIVOT_ROOT] = { "pivot_root", 155, 41 },
  [TSC_SWAPON] = { "swapon", 167, 224 },
  [TSC_SWAPOFF] = { "swapoff", 168, 225 },
  [TSC_ACCT] = { "acct", 163, 89 },
  [TSC_QUOTACTL] = { "quotactl", 179, 60 },
  [TSC_NAME_TO_HANDLE_AT] = { "name_to_handle_at", 303, 264 },
  [TSC_OPEN_BY_HANDLE_AT] = { "open_by_handle_at", 304, 265 },
  [TSC_FANOTIFY_MARK] = { "fanotify_mark", 301, 263 },
  [TSC_OPEN_TREE] = { "open_tree", 428, 428 },
  [TSC_MOVE_MOUNT] = { "move_mount", 429, 429 },
  [TSC_FSOPEN] = { "fsopen", 430, 430 },
  [TSC_FSCONFIG] = { "fsconfig", 431, 431 },
  [TSC_FSMOUNT] = { "fsmount", 432, 432 },
  [TSC_FSPICK] = { "fspick", 433, 433 },
  [TSC_MOUNT_SETATTR] = { "mount_setattr", 442, 442 },
  [TSC_USELIB] = { "uselib", 134, -1 },
  [TSC_IO_URING_SETUP] = { "io_uring_setup", 425, 425 },
  [TSC_IO_URING_ENTER] = { "io_uring_enter", 426, 426 },
  [TSC_IO_URING_REGISTER] = { "io_uring_register", 427, 427 },
  [TSC_USERFAULTFD] = { "userfaultfd", 323, 282 },
  [TSC_PTRACE] = { "ptrace", 101, 117 },
  [TSC_PROCESS_VM_WRITEV] = { "process_vm_writev", 311, 271 },
  [TSC_STATMOUNT] = { "statmount", 457, 457 },
  [TSC_LISTMOUNT] = { "listmount", 458, 458 },
  [TSC_SETXATTRAT] = { "setxattrat", 463, 463 },
  [TSC_GETXATTRAT] = { "getxattrat", 464, 464 },
  [TSC_LISTXATTRAT] = { "listxattrat", 465, 465 },
  [TSC_REMOVEXATTRAT] = { "removexattrat", 466, 466 },
  [TSC_OPEN_TREE_ATTR] = { "open_tree_attr", 467, 467 },
  [TSC_FILE_GETATTR] = { "file_getattr", 468, 468 },
  [TSC_FILE_SETATTR] = { "file_setattr", 469, 469 },
  [TSC_UNSHARE] = { "unshare", 272, 97 },
  [TSC_SETNS] = { "setns", 308, 268 },
  [TSC_SOCKET] = { "socket", 41, 198 },
  [TSC_CLONE3] = { "clone3", 435, 435 },
};

long
tracer_sysno (tsc t)
{
  if (t <= TSC_NONE || t >= TSC_COUNT)
    return -1;
#if defined(__x86_64__)
  return table[t].x86_64;
#elif defined(__aarch64__)
  return table[t].aarch64;
#else
#error "ptrace isolation supports x86_64 and aarch64"
#endif
}

/* Native number -> traced call: the seccomp stop's call without a
 * PTRACE_GETEVENTMSG (the filter's data is the same tsc). */
#define NR_MAX 512
static unsigned char nr_tsc[NR_MAX];
static pthread_once_t nr_once = PTHREAD_ONCE_INIT;

static void
nr_init (void)
{
  _Static_assert (TSC_N_TRACED < 256, "tsc fits a byte");
  for (int t = TSC_NONE + 1; t < TSC_N_TRACED; t++)
    {
      long nr = tracer_sysno ((tsc) t);
      if (nr >= 0 && nr < NR_MAX)
        nr_tsc[nr] = (unsigned char) t;
    }
}

tsc
tracer_tsc_of (long nr)
{
  pthread_once (&nr_once, nr_init);
  return nr >= 0 && nr < NR_MAX ? (tsc) nr_tsc[nr] : TSC_NONE;
}

const char *
tracer_sysname (tsc t)
{
  return t > TSC_NONE && t < TSC_COUNT ? table[t].name : "?";
}

/* ---- registers ---- */

#if defined(__x86_64__)

_Static_assert (sizeof (struct user_regs_struct) <= sizeof (((tracer_regs *) 0)->raw), "regs");
#define X86(r) ((struct user_regs_struct *) (r)->raw)
#define X86C(r) ((const struct user_regs_struct *) (r)->raw)

int
tracer_regs_get (pid_t tid, tracer_regs *r)
{
  memset (r, 0, sizeof *r);
  if (ptrace (PTRACE_GETREGS, tid, NULL, X86 (r)) < 0)
    return -errno;
  r->nr = (long) X86 (r)->orig_rax;
  return 0;
}

int
tracer_regs_put (pid_t tid, tracer_regs *r)
{
  if (!r->dirty && !r->nr_dirty)
    return 0;
  X86 (r)->orig_rax = (unsigned long long) r->nr;
  if (ptrace (PTRACE_SETREGS, tid, NULL, X86 (r)) < 0)
    return -errno;
  r->dirty = r->nr_dirty = false;
  return 0;
}

unsigned long
tracer_arg (const tracer_regs *r, int i)
{
  const struct user_regs_struct *x = X86C (r);
  switch (i)
    {
    case 0: return x->rdi;
    case 1: return x->rsi;
    case 2: return x->rdx;
    case 3: return x->r10;
    case 4: return x->r8;
    default: return x->r9;
    }
}

void
tracer_set_arg (tracer_regs *r, int i, unsigned long v)
{
  struct user_regs_struct *x = X86 (r);
  unsigned long long *p[] = { &x->rdi, &x->rsi, &x->rdx, &x->r10, &x->r8, &x->r9 };
  *p[i] = v;
  r->dirty = true;
}

unsigned long
tracer_sp (const tracer_regs *r)
{
  /* Below rsp lies the 128-byte red zone a leaf function may use. */
  return X86C (r)->rsp - 128;
}

long
tracer_retval (const tracer_regs *r)
{
  return (long) X86C (r)->rax;
}

void
tracer_set_retval (tracer_regs *r, long ret)
{
  X86 (r)->rax = (unsigned long long) ret;
  r->dirty = true;
}

#elif defined(__aarch64__)

#include <asm/ptrace.h>
_Static_assert (sizeof (struct user_pt_regs) <= sizeof (((tracer_regs *) 0)->raw), "regs");
#define A64(r) ((struct user_pt_regs *) (r)->raw)
#define A64C(r) ((const struct user_pt_regs *) (r)->raw)

int
tracer_regs_get (pid_t tid, tracer_regs *r)
{
  memset (r, 0, sizeof *r);
  struct iovec iov = { A64 (r), sizeof (struct user_pt_regs) };
  if (ptrace (PTRACE_GETREGSET, tid, (void *) NT_PRSTATUS, &iov) < 0)
    return -errno;
  r->nr = (long) A64 (r)->regs[8];
  return 0;
}

int
tracer_regs_put (pid_t tid, tracer_regs *r)
{
  if (r->nr_dirty)
    {
      int nr = (int) r->nr;
      struct iovec iov = { &nr, sizeof nr };
      if (ptrace (PTRACE_SETREGSET, tid, (void *) NT_ARM_SYSTEM_CALL, &iov) < 0)
        return -errno;
    }
  if (r->dirty)
    {
      struct iovec iov = { A64 (r), sizeof (struct user_pt_regs) };
      if (ptrace (PTRACE_SETREGSET, tid, (void *) NT_PRSTATUS, &iov) < 0)
        return -errno;
    }
  r->dirty = r->nr_dirty = false;
  return 0;
}

unsigned long
tracer_arg (const tracer_regs *r, int i)
{
  return A64C (r)->regs[i];
}

void
tracer_set_arg (tracer_regs *r, int i, unsigned long v)
{
  A64 (r)->regs[i] = v;
  r->dirty = true;
}

unsigned long
tracer_sp (const tracer_regs *r)
{
  return A64C (r)->sp;   /* no red zone in the AAPCS64 */
}

long
tracer_retval (const tracer_regs *r)
{
  return (long) A64C (r)->regs[0];
}

void
tracer_set_retval (tracer_regs *r, long ret)
{
  A64 (r)->regs[0] = (unsigned long long) ret;
  r->dirty = true;
}

#endif

void
tracer_skip (tracer_regs *r, long ret)
{
  /* seccomp(2): at the seccomp stop, syscall number -1 skips the call and
   * the return register is what the tracee sees (arm64 keeps x0 when the
   * tracer set it: arch/arm64/kernel/syscall.c). */
  r->nr = -1;
  r->nr_dirty = true;
  tracer_set_retval (r, ret);
}

/* ---- memory ---- */

static int
mem_fallback (pid_t tid, unsigned long addr, void *buf, size_t len, bool write)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/mem", (int) tid);
  int fd = open (path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n;
  do
    n = write ? pwrite (fd, buf, len, (off_t) addr) : pread (fd, buf, len, (off_t) addr);
  while (n < 0 && errno == EINTR);
  int e = errno;
  close (fd);
  if (n < 0)
    return -e;
  return (size_t) n == len ? 0 : -EFAULT;
}

int
tracer_mem_read (pid_t tid, unsigned long addr, void *buf, size_t len)
{
  struct iovec local = { buf, len }, remote = { (void *) addr, len };
  ssize_t n = process_vm_readv (tid, &local, 1, &remote, 1, 0);
  if (n == (ssize_t) len)
    return 0;
  if (n < 0 && (errno == ENOSYS || errno == EPERM))
    return mem_fallback (tid, addr, buf, len, false);
  return -EFAULT;
}

int
tracer_mem_write (pid_t tid, unsigned long addr, const void *buf, size_t len)
{
  struct iovec local = { (void *) buf, len }, remote = { (void *) addr, len };
  ssize_t n = process_vm_writev (tid, &local, 1, &remote, 1, 0);
  if (n == (ssize_t) len)
    return 0;
  if (n < 0 && (errno == ENOSYS || errno == EPERM))
    return mem_fallback (tid, addr, (void *) buf, len, true);
  return -EFAULT;
}

int
tracer_mem_string (pid_t tid, unsigned long addr, size_t max, char **out)
{
  if (addr == 0)
    return -EFAULT;
  char *buf = xmalloc (max + 1);
  size_t got = 0;
  while (got < max + 1)
    {
      /* Read up to the end of the page: the next one may not be mapped. */
      size_t chunk = 4096 - ((addr + got) & 4095);
      if (chunk > max + 1 - got)
        chunk = max + 1 - got;
      struct iovec local = { buf + got, chunk }, remote = { (void *) (addr + got), chunk };
      ssize_t n = process_vm_readv (tid, &local, 1, &remote, 1, 0);
      if (n <= 0)
        {
          int r = n < 0 && (errno == ENOSYS || errno == EPERM) ? mem_fallback (tid, addr + got, buf + got, chunk, false)
                                                               : -EFAULT;
          if (r < 0)
            {
              free (buf);
              return r;
            }
          n = (ssize_t) chunk;
        }
      char *nul = memchr (buf + got, '\0', (size_t) n);
      if (nul)
        {
          *out = buf;
          return 0;
        }
      got += (size_t) n;
    }
  free (buf);
  return -ENAMETOOLONG;
}

void
tracer_scratch_init (tracer_scratch *s, pid_t tid, const tracer_regs *r)
{
  s->tid = tid;
  s->top = tracer_sp (r) & ~15UL;
}

unsigned long
tracer_scratch_put (tracer_scratch *s, const void *data, size_t len, int *e)
{
  unsigned long at = (s->top - len) & ~15UL;
  int r = tracer_mem_write (s->tid, at, data, len);
  if (r < 0)
    {
      *e = -r;
      return 0;
    }
  s->top = at;
  return at;
}
