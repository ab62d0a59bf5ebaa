/* seccomp_builtin.c - policies/default.json inside the binary.
 *
 * kiln copied without its policies/ directory (into a CI image, a pod, a
 * kaniko-style executor image) still confines its RUN steps with the
 * default profile: seccomp_profile_load_filter falls back to these bytes
 * when no policies/default.json is found. The file is assembled in
 * verbatim (.incbin), so the binary's profile is the repository's. */
#include "sandbox/seccomp_profile.h"

__asm__ (".section .rodata\n"
         ".global seccomp_builtin_default\n"
         ".type seccomp_builtin_default, @object\n"
         "seccomp_builtin_default:\n"
         ".incbin \"policies/default.json\"\n"
         ".global seccomp_builtin_default_end\n"
         ".type seccomp_builtin_default_end, @object\n"
         "seccomp_builtin_default_end:\n"
         ".previous\n");
