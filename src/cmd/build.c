/* build.c - `kiln build`: flags (docker build, BuildKit and kaniko
 * executor spellings), then plan -> build_exec -> build_output. */
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "cmd/build_kaniko.h"
#include "build/attest.h"
#include "build/build_cache.h"
#include "build/build_cache_mounts.h"
#include "build/build_exec.h"
#include "build/build_lazy.h"
#include "build/build_output.h"
#include "build/dockerfile.h"
#include "build/plan.h"
#include "build/plan_json.h"
#include "build/progress.h"
#include "build/run_mounts.h"
#include "registry/reference.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "store/fetch.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/sigcancel.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/units.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/build_opts.h"


static int
dry_run (plan *p, kiln_error **err)
{
  autofree char *json = NULL;
  if (plan_json_render (p, &json, err) < 0)
    return KILN_EXIT_FAILURE;
  fputs (json, stdout);
  if (fflush (stdout) != 0)
    {
      kiln_error_make (err, 0, "writing the plan to stdout failed");
      return KILN_EXIT_FAILURE;
    }
  return KILN_EXIT_OK;
}

static int
exec_opts_from (build_cmd_opts *o, build_exec_opts *eo, progress_mode *pm, kiln_error **err)
{
  eo->layer.level = o->compression_level > 0 ? o->compression_level : -1;
  if (o->compression && mediatype_parse_compression (o->compression, &eo->layer.compression, err) < 0)
    return -1;
  int lo, hi;
  /* 0 is "the default" on the command line, so levels start at 1 here. */
  bool has_levels = layer_writer_level_range (eo->layer.compression, &lo, &hi);
  if (o->compression_level > 0 && (!has_levels || o->compression_level > hi))
    {
      char range[32] = "no level";
      if (has_levels)
        snprintf (range, sizeof range, "1 to %d", hi);
      return kiln_error_make (err, EINVAL, "--compression-level %d: %s takes %s", o->compression_level,
                              o->compression ? o->compression : "gzip", range);
    }
  if (o->format && image_parse_format (o->format, &eo->format, err) < 0)
    return -1;
  if (o->userns && sandbox_parse_userns (o->userns, &eo->userns, err) < 0)
    return -1;
  eo->network = SANDBOX_NET_PRIVATE;
  if (o->network && sandbox_parse_network (o->network, &eo->network, err) < 0)
    return -1;
  eo->network_set = o->network != NULL;
  if (o->isolation && sandbox_parse_isolation (o->isolation, &eo->isolation, err) < 0)
    return -1;
  *pm = PROGRESS_AUTO;
  if (o->progress && progress_parse_mode (o->progress, pm, err) < 0)
    return -1;
  if (o->quiet)
    {
      *pm = PROGRESS_QUIET;
      /* Nothing but the digest: info lines (pulls, pushes) too are quiet. */
      if (!o->common.verbosity_set && o->common.verbosity > LOG_LEVEL_WARN)
        {
          o->common.verbosity = LOG_LEVEL_WARN;
          cli_common_apply (&o->common);
        }
    }
  /* One JSON object per line on stderr: log lines too, unless asked
   * otherwise. */
  if (*pm == PROGRESS_JSON && !o->common.log_format_set)
    {
      o->common.log_format = LOG_FORMAT_JSON;
      cli_common_apply (&o->common);
    }
  if (eo->network == SANDBOX_NET_HOST)
    log_info ("--network host: RUN steps share the host's network namespace: they reach every service on "
              "the host's loopback and its abstract unix sockets");
  if (o->reproducible)
    {
      eo->reproducible = true;
      const char *sde = getenv ("SOURCE_DATE_EPOCH");
      if (sde && *sde)
        {
          char *end;
          long long v = strtoll (sde, &end, 10);
          if (*end || v < 0)
            return kiln_error_make (err, EINVAL, "SOURCE_DATE_EPOCH '%s' is not a non-negative integer", sde);
          eo->epoch = v;
        }
      eo->layer.clamp_mtime = true;
      eo->layer.clamp_epoch = eo->epoch;
    }
  eo->seccomp_policy = o->seccomp;
  eo->single_snapshot = o->single_snapshot;
  eo->allow_insecure = o->allow_insecure;
  eo->limits = o->limits;
  if (o->jobs > 0)
    eo->jobs = o->jobs;
  else
    {
      long n = sysconf (_SC_NPROCESSORS_ONLN);
      eo->jobs = n > 0 ? (int) n : 1;
    }
  eo->ignore_paths = o->ignore_paths;
  eo->labels = o->labels;
  eo->secrets = o->secrets;
  return 0;
}

/* A tar context (tar://PATH or - for stdin) is unpacked by libarchive into
 * a private directory of the store's tmp/ with its secure-extraction flags
 * (no "..", no absolute names, nothing through symlinks, no owners), and
 * the build then uses that directory. */
static int
context_from_tar (store *s, const char *spec, char **tmpname, char **dir, kiln_error **err)
{
  const char *path = strcmp (spec, "-") == 0 ? NULL : spec + 6;
  autoclose int tfd = -1;
  if (store_mktemp (s, "context-", tmpname, &tfd, err) < 0)
    return -1;
  *dir = xasprintf ("%s/tmp/%s/ctx", s->root, *tmpname);
  if (mkdirat (tfd, "ctx", 0700) < 0)
    return kiln_error_make (err, errno, "context directory");
  struct archive *a = archive_read_new ();
  struct archive *w = archive_write_disk_new ();
  archive_read_support_filter_all (a);
  archive_read_support_format_tar (a);
  archive_read_support_format_gnutar (a);
  archive_write_disk_set_options (w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT
                                         | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS
                                         | ARCHIVE_EXTRACT_NO_OVERWRITE);
  int r = path ? archive_read_open_filename (a, path, 1 << 16) : archive_read_open_fd (a, 0, 1 << 16);
  const char *what = path ? path : "stdin";
  int ret = 0;
  if (r != ARCHIVE_OK)
    ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (a));
  struct archive_entry *e;
  /* archive_write_disk works relative to the current directory, and its
   * secure flags refuse absolute names: extract from inside the context
   * directory (no other thread runs yet), then go back. */
  autoclose int oldcwd = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  autoclose int cfd = openat (tfd, "ctx", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (ret == 0 && (oldcwd < 0 || cfd < 0 || fchdir (cfd) < 0))
    ret = kiln_error_make (err, errno, "context directory");
  while (ret == 0 && (r = archive_read_next_header (a, &e)) == ARCHIVE_OK)
    {
      int ft = archive_entry_filetype (e);
      if (ft != AE_IFREG && ft != AE_IFDIR && ft != AE_IFLNK)
        continue; /* devices, fifos: nothing a context needs */
      if (archive_write_header (w, e) != ARCHIVE_OK)
        ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (w));
      const void *buf;
      size_t len;
      la_int64_t off;
      while (ret == 0 && (r = archive_read_data_block (a, &buf, &len, &off)) == ARCHIVE_OK)
        if (archive_write_data_block (w, buf, len, off) != ARCHIVE_OK)
          ret = kiln_error_make (err, EIO, "context '%s': %s", what, archive_error_string (w));
      if (ret == 0 && r != ARCHIVE_EOF)
        ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (a));
      if (ret == 0 && archive_write_finish_entry (w) != ARCHIVE_OK)
        ret = kiln_error_make (err, EIO, "context '%s': %s", what, archive_error_string (w));
    }
  if (ret == 0 && r != ARCHIVE_EOF)
    ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (a));
  archive_read_free (a);
  archive_write_free (w);
  if (oldcwd >= 0 && fchdir (oldcwd) < 0 && ret == 0)
    ret = kiln_error_make (err, errno, "returning to the working directory");
  return ret;
}

static int build_run_in (build_cmd_opts *o, const char *ctx_dir, store **sp, kiln_error **err);

static int
build_run (build_cmd_opts *o, kiln_error **err)
{
  const char *ctx_dir = o->context ? o->context : ".";
  autostore store *s = NULL;
  autofree char *ctx_tmp = NULL, *ctx_buf = NULL;
  if (o->context && (strcmp (o->context, "-") == 0 || strncmp (o->context, "tar://", 6) == 0))
    {
      if (store_open (o->common.root, 0, &s, err) < 0)
        return -1;
      int r = context_from_tar (s, o->context, &ctx_tmp, &ctx_buf, err);
      if (r < 0)
        {
          if (ctx_tmp)
            store_rmtemp (s, ctx_tmp);
          return -1;
        }
      ctx_dir = ctx_buf;
    }
  autofree char *sub_dir = NULL;
  if (o->kaniko.context_sub_path)
    {
      sub_dir = xasprintf ("%s/%s", ctx_dir, o->kaniko.context_sub_path);
      if (access (sub_dir, F_OK) < 0)
        {
          kiln_error_make (err, errno, "--context-sub-path '%s': '%s'", o->kaniko.context_sub_path, sub_dir);
          if (ctx_tmp)
            store_rmtemp (s, ctx_tmp);
          return -1;
        }
      ctx_dir = sub_dir;
    }
  int rc = build_run_in (o, ctx_dir, &s, err);
  if (ctx_tmp)
    store_rmtemp (s, ctx_tmp);
  return rc;
}

/* Check the output names and the executor options, parse the Dockerfile
 * and make sure the build has somewhere to go: *dfp is then the caller's. */
static int
build_load (build_cmd_opts *o, const char *ctx_dir, const char *df_path, build_exec_opts *eo, progress_mode *pm,
            dockerfile **dfp, kiln_error **err)
{
  for (char **d = o->destinations; d && *d; d++)
    {
      autoref registry_ref *ref = NULL;
      if (registry_ref_parse (*d, &ref, err) < 0)
        return kiln_error_wrap (err, "--tag '%s'", *d);
      if (strcmp (ref->domain, REGISTRY_DOCKER_HUB) == 0 && strncmp (*d, "docker.io/", 10) != 0
          && strncmp (*d, "index.docker.io/", 16) != 0 && !o->dry_run)
        {
          autofree char *full = registry_ref_string (ref);
          log_info ("'%s' names no registry: it means %s (Docker Hub, Docker's default)", *d, full);
        }
    }
  if (exec_opts_from (o, eo, pm, err) < 0)
    return -1;
  for (char **n = o->noop_notes; n && *n; n++)
    log_info ("%s", *n);

  dockerfile *df = NULL;
  if (dockerfile_parse_file (df_path, ctx_dir, &df, err) < 0)
    return -1;
  for (char **w = df->warnings; w && *w; w++)
    log_warn ("%s", *w);
  if (!o->dry_run && !o->destinations && !o->no_push && !o->oci_layout && !o->tar_path)
    {
      dockerfile_free (df);
      return kiln_error_make (err, EINVAL, "no output: give -t/--destination IMAGE, --oci-layout DIR or --tar-path "
                              "FILE (or --no-push to only build into the store)");
    }
  *dfp = df;
  return 0;
}

/* --dry-run: plan the build (plan_build takes df) and print the plan. */
static int
build_dry_run (dockerfile *df, const plan_options *po, kiln_error **err)
{
  plan *p = NULL;
  if (plan_build (df, po, &p, err) < 0)
    return -1;
  for (size_t i = 0; p->warnings && p->warnings[i]; i++)
    log_warn ("%s", p->warnings[i]);
  int rc = dry_run (p, err);
  plan_free (p);
  return rc == KILN_EXIT_OK ? 0 : -1;
}

/* After a successful build: keep the result under a ref, write the
 * outputs (unless a signal came meanwhile) and print the summary. */
static int
build_publish (build_cmd_opts *o, store *s, build_exec *b, progress *prog, build_result *res,
               volatile sig_atomic_t *build_signal, kiln_error **err)
{
  double t0 = progress_elapsed (prog);
  build_output_opts oo = {
    .destinations = o->destinations, .no_push = o->no_push, .reg = &o->reg, .mirrors = o->mirrors,
    .push_retry = o->push_retry,
    .oci_layout = o->oci_layout, .tar_path = o->tar_path, .digest_file = o->digest_file,
    .name_digest_file = o->name_digest_file, .progress = prog,
    .name_tag_digest_file = o->kaniko.name_tag_digest_file, .ignore_immutable_tags = o->kaniko.push_ignore_immutable,
  };
  /* --sbom, --provenance: documents from the image's layers, attached to
   * every output; the image's manifest is not touched. */
  autoattestset attest_set att = { 0 };
  if (o->sbom || o->provenance)
    {
      autofree char *df_digest = NULL;
      autofree char *df_data = NULL;
      size_t df_len = 0;
      if (o->df_path && fs_read_file_at (AT_FDCWD, o->df_path, 16u << 20, &df_data, &df_len, err) < 0)
        return kiln_error_wrap (err, "provenance: Dockerfile");
      if (df_data)
        {
          df_digest = xmalloc (DIGEST_STRING_SIZE);
          digest_buffer (df_data, df_len, df_digest);
        }
      const char *version, *commit;
      cmd_version_strings (&version, &commit);
      char ctx_digest[DIGEST_STRING_SIZE] = "";
      if (o->provenance && build_exec_context_digest (b, ctx_digest, err) < 0)
        return kiln_error_wrap (err, "provenance");
      attest_opts ao = {
        .sbom = o->sbom, .provenance = o->provenance, .sbom_file = o->sbom_file,
        .provenance_file = o->provenance_file,
        .name = o->destinations && o->destinations[0] ? o->destinations[0] : o->oci_layout,
        .created = o->reproducible ? o->epoch : (int64_t) time (NULL),
        .started = o->reproducible ? 0 : o->started, .finished = (int64_t) time (NULL),
        .kiln_version = version, .kiln_commit = commit, .dockerfile_path = o->df_path,
        .dockerfile_digest = df_digest, .target = o->target, .platform = o->platform,
        .build_args = o->build_args, .context = o->context ? o->context : ".",
        .context_digest = ctx_digest[0] ? ctx_digest : NULL,
      };
      if (!o->sbom_file && !o->provenance_file && !o->oci_layout && (o->no_push || !o->destinations))
        log_warn ("--sbom/--provenance: the documents go nowhere: nothing is pushed, and there is no --oci-layout, "
                  "--sbom-file or --provenance-file (a --tar-path archive cannot carry them)");
      int id = progress_step_begin (prog, "attest", 1, 1, "making the SBOM and provenance");
      /* the documents read the layers' files: lazy layers are fetched */
      build_lazy_opts lo = { s, &o->reg, o->mirrors };
      int r = build_lazy_fetch (&lo, res->layers, res->layers ? res->n_layers : 0, false, err);
      if (r == 0)
        r = attest_make (s, res, &ao, &att, err);
      progress_step_end_id (prog, id, r < 0 ? "ERROR" : "DONE");
      if (r < 0)
        return -1;
      oo.attest = &att;
    }
  /* Keep the result: prune removes what no ref reaches. */
  {
    autofree char *refname = xasprintf ("build/%s", o->destinations && o->destinations[0] ? o->destinations[0]
                                                    : o->oci_layout ? o->oci_layout : "latest");
    if (store_set_ref (s, refname, res->manifest_digest, err) < 0)
      return -1;
  }
  if (*build_signal)
    {
      kiln_error_make (err, EINTR, "interrupted by signal %d (%s) before pushing", (int) *build_signal,
                       strsignal ((int) *build_signal));
      return -1;
    }
  /* The outputs are a step of their own: push lines belong to no
   * Dockerfile step. */
  bool any = (!o->no_push && o->destinations) || o->oci_layout || o->tar_path;
  int out_id = any ? progress_step_begin (prog, "output", 1, 1, "exporting the image") : 0;
  int r = build_output_write (s, res, &oo, err);
  if (any)
    progress_step_end_id (prog, out_id, r < 0 ? "ERROR" : "DONE");
  if (r < 0)
    return -1;
  double t_push = progress_elapsed (prog) - t0;
  uint64_t n_dl, dl_bytes;
  store_fetch_downloaded (&n_dl, &dl_bytes);
  progress_note (prog, "layer blobs pulled: %llu (%.1f MB)", (unsigned long long) n_dl, dl_bytes / 1e6);
  const char *names[] = { "pull", "run", "snapshot", "pack", "copy", "push" };
  double secs[] = { res->t_pull, res->t_run, res->t_snapshot, res->t_pack, res->t_copy, t_push };
  progress_summary (prog, res->manifest_digest, (unsigned long long) res->size, res->n_layers, secs, names, 6);
  if (o->quiet)
    printf ("%s\n", res->manifest_digest);
  return 0;
}

/* Whether the platforms' plans are built at the same time: with --jobs of
 * at least 2, unless the build cache is on and a needed stage is for
 * another platform than its plan's target (FROM --platform=$BUILDPLATFORM):
 * such a stage is usually the same for every target, and built one
 * platform after another it is built once and a cache hit for the others,
 * where at the same time every platform would build it. */
static bool
platforms_concurrent (const build_cmd_opts *o, const build_exec_opts *eo, plan **plans, size_t n)
{
  if (n < 2 || eo->jobs < 2)
    return false;
  for (size_t i = 0; o->cache && i < n; i++)
    for (size_t k = 0; k < plans[i]->n_stages; k++)
      {
        const plan_stage *ps = &plans[i]->stages[k];
        if (ps->needed && ps->platform && plans[i]->target_platform
            && strcmp (ps->platform, plans[i]->target_platform) != 0)
          return false;
      }
  return true;
}

typedef struct platform_job
{
  build_exec *b;
  plan *p;
  build_result *res;
  const sigcancel_pipe *cancel;
  kiln_error *err;
  int rc;
} platform_job;

static void *
platform_worker (void *arg)
{
  platform_job *j = arg;
  j->rc = build_exec_run (j->b, j->p, j->res, &j->err);
  /* stop the other platforms' running steps too */
  if (j->rc < 0 && j->cancel)
    sigcancel_trigger (j->cancel);
  return NULL;
}

/* Build plans[0..n) at the same time, each platform on a thread with an
 * executor of its own (same store, cache, progress and cancellation) whose
 * stages get an equal share of --jobs, so no more than --jobs stages run
 * at once. The first failure cancels the others and is the error. */
static int
build_concurrently (const build_exec_opts *eo, plan **plans, build_result *images, char **platforms, size_t n,
                    kiln_error **err)
{
  build_exec_opts po = *eo;
  po.jobs = eo->jobs / (int) n > 1 ? eo->jobs / (int) n : 1;
  log_info ("building %zu platforms at once (--jobs %d: %d per platform)", n, eo->jobs, po.jobs);
  platform_job *jobs = xcalloc (n, sizeof *jobs);
  pthread_t *t = xcalloc (n, sizeof *t);
  bool *started = xcalloc (n, sizeof *started);
  int ret = 0;
  for (size_t i = 0; i < n; i++)
    {
      jobs[i] = (platform_job) { NULL, plans[i], &images[i], eo->cancel, NULL, -1 };
      if (build_exec_new (&po, &jobs[i].b, &jobs[i].err) < 0)
        break;
      if (pthread_create (&t[i], NULL, platform_worker, &jobs[i]) == 0)
        started[i] = true;
      else
        platform_worker (&jobs[i]); /* no thread: build it here */
    }
  for (size_t i = 0; i < n; i++)
    if (started[i])
      pthread_join (t[i], NULL);
  /* the error: the first that is not another's cancellation */
  ssize_t bad = -1;
  for (size_t i = 0; i < n; i++)
    if (jobs[i].rc < 0 && (bad < 0 || (jobs[bad].err && jobs[bad].err->status == ECANCELED
                                       && jobs[i].err && jobs[i].err->status != ECANCELED)))
      bad = (ssize_t) i;
  if (bad >= 0)
    {
      *err = steal_pointer (&jobs[bad].err);
      if (!*err)
        kiln_error_make (err, ECANCELED, "the build of another platform failed");
      kiln_error_wrap (err, "platform %s", platforms[bad]);
      ret = -1;
    }
  for (size_t i = 0; i < n; i++)
    {
      kiln_error_free (jobs[i].err);
      build_exec_free (jobs[i].b);
    }
  free (jobs);
  free (t);
  free (started);
  return ret;
}

/* The build for every platform of --platform (takes df). Several: every
 * platform is planned first (base images resolved per platform) and checked
 * for emulation (build_exec_check_emulation), so a missing binfmt_misc
 * handler fails before anything runs; then the platforms are built at the
 * same time (build_concurrently) or, when platforms_concurrent says no, one
 * after another in the same executor and store: a stage that is the same
 * for all of them (FROM --platform=$BUILDPLATFORM, not using TARGET*) is
 * built by the first and a cache hit for the others, and each platform's
 * independent stages still run on --jobs threads. The images become one
 * index (build_output_index). */
static int
build_platforms (build_cmd_opts *o, store *s, build_exec *b, const build_exec_opts *eo, dockerfile *df,
                 const char *df_path, const char *ctx_dir, plan_options *po, build_result *res, kiln_error **err)
{
  po->image_env = build_exec_image_env;
  po->image_env_ctx = b;
  size_t n = strv_len (o->platforms) ? strv_len (o->platforms) : 1;
  plan **plans = xcalloc (n, sizeof *plans);
  build_result *images = xcalloc (n, sizeof *images);
  int ret = -1;
  size_t i;
  for (i = 0; i < n; i++)
    {
      if (i > 0 && dockerfile_parse_file (df_path, ctx_dir, &df, err) < 0)
        goto out;
      po->platform = o->platforms ? o->platforms[i] : NULL;
      if (plan_build (df, po, &plans[i], err) < 0)
        goto out;
      for (size_t k = 0; i == 0 && plans[i]->warnings && plans[i]->warnings[k]; k++)
        log_warn ("%s", plans[i]->warnings[k]);
      if (build_exec_check_emulation (b, plans[i], err) < 0)
        goto out;
    }
  if (platforms_concurrent (o, eo, plans, n))
    {
      i = n; /* build_concurrently names the platform */
      if (build_concurrently (eo, plans, images, o->platforms, n, err) < 0)
        goto out;
    }
  else
    for (i = 0; i < n; i++)
      {
        if (n > 1)
          log_info ("building for %s (platform %zu of %zu)", o->platforms[i], i + 1, n);
        if (build_exec_run (b, plans[i], n > 1 ? &images[i] : res, err) < 0)
          goto out;
      }
  ret = n > 1 ? build_output_index (s, eo->format, steal_pointer (&images), n, res, err) : 0;
out:
  if (ret < 0 && n > 1 && i < n)
    kiln_error_wrap (err, "platform %s", o->platforms[i]);
  for (size_t k = 0; k < n; k++)
    {
      plan_free (plans[k]);
      if (images)
        build_result_clear (&images[k]);
    }
  free (plans);
  free (images);
  return ret;
}

/* The build proper in the open store s: set up cancellation, progress,
 * cache and executor, plan (plan_build takes df), run, publish; then
 * tear everything down in reverse. */
static int
build_in_store (build_cmd_opts *o, store *s, const char *ctx_dir, const char *df_path, build_exec_opts *eo,
                progress_mode pm, dockerfile *df, plan_options *po, kiln_error **err)
{
  s->remove_fallback = sandbox_rm_at_fallback;
  /* Level-triggered cancellation that every RUN step polls (sandbox
   * cancel_fd): with stages on several threads the signal may land on any
   * thread. The build checks the flag between steps. */
  sigcancel_pipe cancel;
  volatile sig_atomic_t *build_signal = sigcancel_open (&cancel);
  eo->cancel = &cancel;
  /* Pulls and pushes stop at SIGINT/SIGTERM too, not only RUN steps. */
  o->reg.cancel = build_signal;
  registry_options pull_reg = o->reg;
  if (o->insecure_pull)
    pull_reg.insecure = true;
  if (o->kaniko.skip_tls_verify_pull)
    pull_reg.skip_tls_verify = true;
  if (o->kaniko.image_download_retry >= 0)
    pull_reg.retries = o->kaniko.image_download_retry;
  progress *prog = progress_new (pm, stderr);
  /* Log lines become notes of the tty frame instead of breaking it. */
  bool log_to_frame = progress_get_mode (prog) == PROGRESS_TTY;
  if (log_to_frame)
    log_setup ((log_level) o->common.verbosity, (log_format) o->common.log_format, o->common.log_timestamp,
               progress_log_stream (prog));
  eo->store = s;
  eo->context_dir = ctx_dir;
  eo->dockerfile_path = df_path;
  o->df_path = df_path;
  o->epoch = eo->epoch;
  o->started = (int64_t) time (NULL);
  eo->reg = &pull_reg;
  eo->mirrors = o->mirrors;
  eo->pull = o->pull;
  eo->build_args = o->build_args;
  eo->progress = prog;
  eo->signal_flag = build_signal;
  build_exec *b = NULL;
  int ret = -1;
  build_result res = { 0 };
  build_cache *cache = NULL;
  build_cache_mounts *mounts = NULL;
  build_cache_opts co = {
    .store = s, .enabled = o->cache, .cache_run = o->cache_run_layers, .cache_copy = o->cache_copy_layers,
    /* default on: with lazy layers a COPY rebuilt from the context would
     * fetch every layer below it (build/build_lazy.h) */
    .cache_copy_remote = !o->cache_copy_given || o->cache_copy_layers,
    .repo = o->cache_repo, .reg = &o->reg, .ttl = o->cache_ttl, .format = eo->format, .progress = prog,
    .no_push = o->kaniko.no_push_cache,
  };
  if (!o->cache && o->cache_repo)
    log_warn ("--cache-repo '%s' is not used: the build cache is off", o->cache_repo);
  if (build_opts_default_cache_repo (o, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  co.repo = o->cache_repo;
  /* Before anything is pulled or run, as kaniko (CheckPushPermissions). */
  if (!o->kaniko.skip_push_check
      && cmd_kaniko_check_push (&o->reg, o->destinations, o->no_push, o->cache ? o->cache_repo : NULL,
                                o->kaniko.no_push_cache, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  if (o->cache && build_cache_new (&co, &cache, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  eo->cache = cache;
  build_cache_mounts_opts cmo = {
    .store = s, .repo = o->cache_mounts_repo, .reg = &o->reg, .ttl = o->cache_ttl, .max_size = o->cache_mounts_max,
    .compression = eo->layer.compression, .level = eo->layer.level, .progress = prog,
  };
  if (o->cache_mounts_repo && build_cache_mounts_new (&cmo, &mounts, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  eo->cache_mounts = mounts;
  eo->platform_labels = strv_len (o->platforms) > 1;
  if (build_exec_new (eo, &b, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  if (build_platforms (o, s, b, eo, df, df_path, ctx_dir, po, &res, err) < 0)
    {
      /* Steps that succeeded are worth sharing: the rerun starts there. */
      if (!*build_signal)
        {
          build_cache_flush (cache);
          build_cache_mounts_finish (mounts);
        }
      goto out;
    }
  /* Cache mounts are packed and pushed while the build cache and the
   * image are. */
  build_cache_mounts_start (mounts);
  build_cache_flush (cache);
  if (build_publish (o, s, b, prog, &res, build_signal, err) < 0)
    goto out;
  build_cache_mounts_finish (mounts);
  ret = 0;
out:
  build_result_clear (&res);
  build_exec_free (b);
  build_cache_mounts_free (mounts);
  build_cache_free (cache);
  if (log_to_frame) /* progress_free closes the log stream */
    log_setup ((log_level) o->common.verbosity, (log_format) o->common.log_format, o->common.log_timestamp, NULL);
  progress_free (prog);
  sigcancel_close (&cancel);
  return ret;
}

static int
build_run_in (build_cmd_opts *o, const char *ctx_dir, store **sp, kiln_error **err)
{
  /* A tar context (kept in the store) also names the Dockerfile inside it;
   * else a relative one is looked up here, then in the context (kaniko). */
  bool unpacked = o->context && (strcmp (o->context, "-") == 0 || strncmp (o->context, "tar://", 6) == 0);
  autofree char *df_path = cmd_kaniko_dockerfile_path (o->file, ctx_dir, unpacked);
  build_exec_opts eo = { 0 };
  progress_mode pm;
  dockerfile *df = NULL;
  if (o->platform && *o->platform && plan_platform_list (o->platform, &o->platforms, err) < 0)
    return -1;
  if (strv_len (o->platforms) > 1 && o->dry_run)
    return kiln_error_make (err, EINVAL, "--dry-run plans one platform: give one --platform, not '%s'", o->platform);
  if (strv_len (o->platforms) > 1 && (o->sbom_file || o->provenance_file))
    return kiln_error_make (err, EINVAL, "--sbom-file/--provenance-file name one file, and '%s' makes an image per "
                            "platform: use --oci-layout DIR (the documents of each platform beside it) or push them",
                            o->platform);
  if (strv_len (o->platforms) > 1 && o->tar_path)
    return kiln_error_make (err, EINVAL, "--tar-path '%s': a docker archive holds one image, not an index of "
                            "several platforms: use --oci-layout DIR (or build one --platform)", o->tar_path);
  if (build_load (o, ctx_dir, df_path, &eo, &pm, &df, err) < 0)
    return -1;
  plan_options po = {
    .build_args = o->build_args, .target = o->target, .platform = o->platforms ? o->platforms[0] : NULL,
    .skip_unused_stages = o->skip_unused_stages,
  };
  if (o->dry_run)
    return build_dry_run (df, &po, err);

  if (!*sp && store_open (o->common.root, 0, sp, err) < 0)
    {
      dockerfile_free (df);
      return -1;
    }
  return build_in_store (o, *sp, ctx_dir, df_path, &eo, pm, df, &po, err);
}

int
cmd_build_main (int argc, char **argv, kiln_error **err)
{
  build_cmd_opts o;
  build_opts_init (&o);
  autostrv char **pos = NULL;
  int rc = KILN_EXIT_FAILURE;
  int r = build_opts_parse (&o, argc, argv, &pos, err);
  if (r <= 0)
    {
      rc = r < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
      goto out;
    }
  if (o.kaniko.print_table)
    {
      rc = build_opts_print_kaniko_table (stdout, err) < 0 ? KILN_EXIT_FAILURE : KILN_EXIT_OK;
      goto out;
    }
  cmd_kaniko_finish (&o.kaniko, &o.ignore_paths);
  if (pos && pos[0] && pos[1])
    {
      kiln_error_make (err, 0, "kiln build: expected at most one CONTEXT argument, got '%s' and '%s'", pos[0], pos[1]);
      rc = KILN_EXIT_USAGE;
      goto out;
    }
  if (pos && pos[0])
    {
      if (o.context)
        {
          kiln_error_make (err, 0, "kiln build: CONTEXT given both as argument and with --context");
          rc = KILN_EXIT_USAGE;
          goto out;
        }
      o.context = xstrdup (strncmp (pos[0], "dir://", 6) == 0 ? pos[0] + 6 : pos[0]);
      if (strstr (o.context, "://") && strncmp (o.context, "tar://", 6) != 0)
        {
          kiln_error_make (err, 0, "kiln build: context '%s': supported are a directory, tar://PATH and -", pos[0]);
          rc = KILN_EXIT_USAGE;
          goto out;
        }
    }
  if (build_run (&o, err) < 0)
    {
      kiln_error_wrap (err, "kiln build");
      /* 130 / 143 as a shell reports a command killed by SIGINT / SIGTERM;
       * a failed RUN step's own status (kaniko's behaviour). */
      rc = sigcancel_exit_code (KILN_EXIT_FAILURE);
      if (rc == KILN_EXIT_FAILURE && *err && (*err)->exit_code > 0 && (*err)->exit_code < 256)
        rc = (*err)->exit_code;
    }
  else
    rc = KILN_EXIT_OK;
out:
  build_opts_free (&o);
  return rc;
}
