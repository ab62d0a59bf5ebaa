/* sandbox_idrules.c - the kernel's rules for set*id calls, on ids kiln
 * keeps itself: single ID mode's fake credentials (sandbox_creds.c) and
 * ptrace isolation's (tracer_ids.c). priv: the caller holds CAP_SETUID
 * (CAP_SETGID for the gid half) in its user namespace. (unsigned) -1
 * means "leave unchanged" where the kernel says so. */
#include "sandbox/sandbox_internal.h"

#include <errno.h>

static bool
may_set (bool priv, unsigned v, unsigned r, unsigned e, unsigned s)
{
  return v == (unsigned) -1 || priv || v == r || v == e || v == s;
}

long
sandbox_ids_set_res (sandbox_idset ids, bool priv, unsigned r, unsigned e, unsigned s)
{
  if (!may_set (priv, r, *ids.r, *ids.e, *ids.s) || !may_set (priv, e, *ids.r, *ids.e, *ids.s)
      || !may_set (priv, s, *ids.r, *ids.e, *ids.s))
    return -EPERM;
  if (r != (unsigned) -1)
    *ids.r = r;
  if (e != (unsigned) -1)
    *ids.e = e;
  if (s != (unsigned) -1)
    *ids.s = s;
  *ids.fs = *ids.e;
  return 0;
}

long
sandbox_ids_set_one (sandbox_idset ids, bool priv, unsigned v)
{
  if (v == (unsigned) -1)
    return -EINVAL;
  if (priv)
    {
      *ids.r = *ids.e = *ids.s = *ids.fs = v;
      return 0;
    }
  if (v != *ids.r && v != *ids.s)
    return -EPERM;
  *ids.e = *ids.fs = v;
  return 0;
}

long
sandbox_ids_set_re (sandbox_idset ids, bool priv, unsigned r, unsigned e)
{
  unsigned old_r = *ids.r;
  if (!priv
      && ((r != (unsigned) -1 && r != *ids.r && r != *ids.e)
          || (e != (unsigned) -1 && e != *ids.r && e != *ids.e && e != *ids.s)))
    return -EPERM;
  if (r != (unsigned) -1)
    *ids.r = r;
  if (e != (unsigned) -1)
    *ids.e = e;
  if (r != (unsigned) -1 || (e != (unsigned) -1 && e != old_r))
    *ids.s = *ids.e;
  *ids.fs = *ids.e;
  return 0;
}

long
sandbox_ids_set_fs (sandbox_idset ids, bool priv, unsigned v)
{
  long old = (long) *ids.fs;
  if (v != (unsigned) -1 && (priv || v == *ids.r || v == *ids.e || v == *ids.s || v == *ids.fs))
    *ids.fs = v;
  return old;
}
