/* authfile.c - config.json / auth.json credentials (see authfile.h). */
#include "registry/authfile.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/json.h"

#define AUTHFILE_MAX_SIZE (4u * 1024 * 1024)

typedef struct auth_entry
{
  char *key; /* normalised: "host[:port]" or "host/ns/repo" */
  registry_credential cred;
} auth_entry;

typedef struct helper_entry
{
  char *host;
  char *helper;
} helper_entry;

struct registry_authfile
{
  auth_entry *auths;
  size_t n_auths;
  helper_entry *helpers;
  size_t n_helpers;
  char *creds_store;
};

void
registry_credential_clear (registry_credential *c)
{
  xfree_secret (c->username);
  xfree_secret (c->password);
  xfree_secret (c->identity_token);
  free (c->helper);
  memset (c, 0, sizeof *c);
}

void
registry_authfile_free (registry_authfile *f)
{
  if (!f)
    return;
  for (size_t i = 0; i < f->n_auths; i++)
    {
      free (f->auths[i].key);
      registry_credential_clear (&f->auths[i].cred);
    }
  free (f->auths);
  for (size_t i = 0; i < f->n_helpers; i++)
    {
      free (f->helpers[i].host);
      free (f->helpers[i].helper);
    }
  free (f->helpers);
  free (f->creds_store);
  free (f);
}

void
cleanup_registry_authfilep (registry_authfile **f)
{
  registry_authfile_free (*f);
  *f = NULL;
}

static bool
is_hub_alias (const char *host, size_t n)
{
  static const char *const aliases[] = { "docker.io", "index.docker.io", "registry-1.docker.io",
                                         "registry.hub.docker.com" };
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strlen (aliases[i]) == n && strncmp (host, aliases[i], n) == 0)
      return true;
  return false;
}

char *
registry_auth_key_normalize (const char *key)
{
  bool url = false;
  if (strncmp (key, "https://", 8) == 0)
    key += 8, url = true;
  else if (strncmp (key, "http://", 7) == 0)
    key += 7, url = true;
  size_t host_len = strcspn (key, "/");
  size_t len = url ? host_len : strlen (key);
  while (len > host_len && key[len - 1] == '/')
    len--;
  if (is_hub_alias (key, host_len))
    {
      /* Docker's "https://index.docker.io/v1/" is the host, not a namespace. */
      if (url || len == host_len)
        return xstrdup ("docker.io");
      return xasprintf ("docker.io%.*s", (int) (len - host_len), key + host_len);
    }
  return xstrndup (key, len);
}

/* Decode base64 "user:pass". Errors never include the value. */
static int
decode_auth (const char *b64, const char *where, registry_credential *c, kiln_error **err)
{
  size_t n = strlen (b64);
  if (n == 0)
    return 0;
  if (n % 4 != 0 || n > 64 * 1024)
    return kiln_error_make (err, 0, "%s: \"auth\" is not valid base64", where);
  unsigned char *buf = xmalloc (n / 4 * 3 + 1);
  int out = EVP_DecodeBlock (buf, (const unsigned char *) b64, (int) n);
  if (out < 0)
    {
      free (buf);
      return kiln_error_make (err, 0, "%s: \"auth\" is not valid base64", where);
    }
  /* EVP_DecodeBlock counts padding as zero bytes. */
  if (b64[n - 1] == '=')
    out--;
  if (b64[n - 2] == '=')
    out--;
  if (out < 0)
    {
      free (buf);
      return kiln_error_make (err, 0, "%s: \"auth\" is not valid base64", where);
    }
  buf[out] = '\0';
  int r = 0;
  char *colon = memchr (buf, ':', (size_t) out);
  if (!colon || memchr (buf, '\0', (size_t) out))
    r = kiln_error_make (err, 0, "%s: \"auth\" does not decode to \"username:password\"", where);
  else
    {
      c->username = xstrndup ((char *) buf, (size_t) (colon - (char *) buf));
      c->password = xstrdup (colon + 1);
    }
  explicit_bzero (buf, (size_t) out);
  free (buf);
  return r;
}

static int
opt_str (const json_value *obj, const char *key, const char *where, char **out, kiln_error **err)
{
  json_value *v = json_get (obj, key);
  if (!v || json_is_null (v))
    return 0;
  if (!json_is_string (v))
    return kiln_error_make (err, 0, "%s: \"%s\" is a %s, expected a string", where, key, json_type_name (v));
  if (json_string (v)[0] != '\0')
    *out = xstrdup (json_string (v));
  return 0;
}

static int
parse_auth_entry (const char *key, const json_value *v, const char *source, auth_entry *e, kiln_error **err)
{
  autofree char *where = xasprintf ("%s: auths.\"%.200s\"", source, key);
  int r;
  if (!json_is_object (v))
    return kiln_error_make (err, 0, "%s is a %s, expected an object", where, json_type_name (v));
  e->key = registry_auth_key_normalize (key);
  autofree char *auth = NULL;
  if ((r = opt_str (v, "auth", where, &auth, err)) < 0)
    return r;
  if (auth)
    {
      r = decode_auth (auth, where, &e->cred, err);
      explicit_bzero (auth, strlen (auth));
      if (r < 0)
        return r;
    }
  if (!e->cred.username)
    {
      if ((r = opt_str (v, "username", where, &e->cred.username, err)) < 0
          || (r = opt_str (v, "password", where, &e->cred.password, err)) < 0)
        return r;
    }
  return opt_str (v, "identitytoken", where, &e->cred.identity_token, err);
}

int
registry_authfile_parse (const char *data, size_t len, const char *source, registry_authfile **out,
                         kiln_error **err)
{
  autojson json_value *root = NULL;
  int r;
  if ((r = json_parse (data, len, AUTHFILE_MAX_SIZE, &root, err)) < 0)
    return kiln_error_wrap (err, "reading credentials from '%s'", source);
  if (!json_is_object (root))
    return kiln_error_make (err, 0, "reading credentials from '%s': top level is a %s, expected an object", source,
                            json_type_name (root));
  autoauthfile registry_authfile *f = xzalloc (sizeof *f);
  json_value *auths = json_get (root, "auths");
  if (auths && !json_is_null (auths))
    {
      if (!json_is_object (auths))
        return kiln_error_make (err, 0, "%s: \"auths\" is a %s, expected an object", source,
                                json_type_name (auths));
      size_t n = json_object_size (auths);
      f->auths = xcalloc (n ? n : 1, sizeof *f->auths);
      for (size_t i = 0; i < n; i++)
        {
          f->n_auths = i + 1;
          if ((r = parse_auth_entry (json_object_key (auths, i), json_object_value (auths, i), source,
                                     &f->auths[i], err))
              < 0)
            return r;
        }
    }
  json_value *helpers = json_get (root, "credHelpers");
  if (helpers && !json_is_null (helpers))
    {
      if (!json_is_object (helpers))
        return kiln_error_make (err, 0, "%s: \"credHelpers\" is a %s, expected an object", source,
                                json_type_name (helpers));
      size_t n = json_object_size (helpers);
      f->helpers = xcalloc (n ? n : 1, sizeof *f->helpers);
      for (size_t i = 0; i < n; i++)
        {
          const char *name = json_string (json_object_value (helpers, i));
          if (!name)
            return kiln_error_make (err, 0, "%s: credHelpers.\"%.200s\" is not a string", source,
                                    json_object_key (helpers, i));
          f->helpers[i].host = registry_auth_key_normalize (json_object_key (helpers, i));
          f->helpers[i].helper = xstrdup (name);
          f->n_helpers = i + 1;
        }
    }
  if ((r = opt_str (root, "credsStore", source, &f->creds_store, err)) < 0)
    return r;
  /* Helper names become part of an executable name looked up in PATH. */
  for (size_t i = 0; i <= f->n_helpers; i++)
    {
      const char *h = i < f->n_helpers ? f->helpers[i].helper : f->creds_store;
      if (!h)
        continue;
      if (h[0] == '\0' || strlen (h) > 64 || strspn (h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen (h))
        return kiln_error_make (err, 0, "%s: invalid credential helper name '%.64s'", source, h);
    }
  *out = steal_pointer (&f);
  return 0;
}

static void
copy_cred (const registry_credential *in, registry_credential *out)
{
  memset (out, 0, sizeof *out);
  out->username = in->username ? xstrdup (in->username) : NULL;
  out->password = in->password ? xstrdup (in->password) : NULL;
  out->identity_token = in->identity_token ? xstrdup (in->identity_token) : NULL;
  out->helper = in->helper ? xstrdup (in->helper) : NULL;
}

int
registry_authfile_lookup (const registry_authfile *f, const char *domain, const char *path,
                          registry_credential *out)
{
  autofree char *host = registry_auth_key_normalize (domain);
  memset (out, 0, sizeof *out);
  for (size_t i = 0; i < f->n_helpers; i++)
    if (strcmp (f->helpers[i].host, host) == 0)
      {
        out->helper = xstrdup (f->helpers[i].helper);
        return 1;
      }
  /* Most specific first: host/a/b/c, host/a/b, host/a, host. */
  autofree char *key = path ? xasprintf ("%s/%s", host, path) : xstrdup (host);
  for (;;)
    {
      for (size_t i = 0; i < f->n_auths; i++)
        if (strcmp (f->auths[i].key, key) == 0)
          {
            copy_cred (&f->auths[i].cred, out);
            return 1;
          }
      char *slash = strrchr (key, '/');
      if (!slash || (size_t) (slash - key) < strlen (host))
        break;
      *slash = '\0';
    }
  if (f->creds_store)
    {
      out->helper = xstrdup (f->creds_store);
      return 1;
    }
  return 0;
}

int
registry_credhelper_parse (const char *data, size_t len, const char *helper, registry_credential *out,
                           kiln_error **err)
{
  autojson json_value *root = NULL;
  autofree char *where = xasprintf ("credential helper 'docker-credential-%s'", helper);
  autofree char *user = NULL;
  autofree char *secret = NULL;
  int r;
  memset (out, 0, sizeof *out);
  /* Never wrap the JSON error: it may quote the secret. */
  if (json_parse (data, len, 1024 * 1024, &root, NULL) < 0 || !json_is_object (root))
    return kiln_error_make (err, 0, "%s: output is not a JSON object", where);
  if ((r = opt_str (root, "Username", where, &user, err)) < 0 || (r = opt_str (root, "Secret", where, &secret, err)) < 0)
    return r;
  if (!secret)
    {
      xfree_secret (steal_pointer (&user));
      return kiln_error_make (err, 0, "%s: output has no \"Secret\"", where);
    }
  if (user && strcmp (user, "<token>") == 0)
    {
      free (steal_pointer (&user));
      out->identity_token = steal_pointer (&secret);
    }
  else
    {
      out->username = steal_pointer (&user);
      out->password = steal_pointer (&secret);
    }
  return 0;
}
