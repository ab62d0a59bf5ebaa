/* transfer.c - curl multi transfer scheduler and job pool (see transfer.h). */
#include "registry/transfer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/log.h"

/* One running transfer. Fields below `lock` are shared between the caller
 * and the I/O thread under the engine lock. */
typedef struct xfer
{
  CURL *h;
  pthread_cond_t cond; /* signalled when data arrives or the transfer ends */
  char *buf;           /* bytes received, not yet given to the caller */
  size_t len;
  size_t cap;
  bool paused;       /* the I/O thread answered CURL_WRITEFUNC_PAUSE */
  bool want_unpause; /* queued for curl_easy_pause (CONT) on the I/O thread */
  bool abort;        /* the caller's write function failed */
  bool done;
  CURLcode result;
  struct xfer *next; /* in the add or unpause queue */
} xfer;

struct transfer_engine
{
  pthread_mutex_t lock;
  int refs;
  CURLM *multi;
  pthread_t thread;
  bool started;
  bool failed_start; /* the thread could not be created: use easy_perform */
  bool stop;
  xfer *to_add;
  xfer *to_unpause;
};

transfer_engine *
transfer_engine_new (void)
{
  transfer_engine *e = xzalloc (sizeof *e);
  pthread_mutex_init (&e->lock, NULL);
  e->refs = 1;
  return e;
}

transfer_engine *
transfer_engine_ref (transfer_engine *e)
{
  pthread_mutex_lock (&e->lock);
  e->refs++;
  pthread_mutex_unlock (&e->lock);
  return e;
}

void
transfer_engine_unref (transfer_engine *e)
{
  if (!e)
    return;
  pthread_mutex_lock (&e->lock);
  bool last = --e->refs == 0;
  if (last)
    e->stop = true;
  pthread_mutex_unlock (&e->lock);
  if (!last)
    return;
  if (e->started)
    {
      curl_multi_wakeup (e->multi);
      pthread_join (e->thread, NULL);
    }
  if (e->multi)
    curl_multi_cleanup (e->multi);
  pthread_mutex_destroy (&e->lock);
  free (e);
}

/* I/O thread: the transfer left the multi. Once done is set the caller may
 * return and free x, so x must not stay in the unpause queue. */
static void
finish (transfer_engine *e, xfer *x, CURLcode result)
{
  pthread_mutex_lock (&e->lock);
  for (xfer **pp = &e->to_unpause; *pp; pp = &(*pp)->next)
    if (*pp == x)
      {
        *pp = x->next;
        break;
      }
  x->want_unpause = false;
  x->done = true;
  x->result = result;
  pthread_cond_signal (&x->cond);
  pthread_mutex_unlock (&e->lock);
}

static void *
io_thread (void *arg)
{
  transfer_engine *e = arg;
  int running = 0;
  for (;;)
    {
      pthread_mutex_lock (&e->lock);
      xfer *add = e->to_add;
      e->to_add = NULL;
      /* Copy the handles: once want_unpause is cleared the caller may queue
       * the xfer again (rewriting next) while we work outside the lock. */
      size_t n_unp = 0;
      for (xfer *x = e->to_unpause; x; x = x->next)
        n_unp++;
      autofree CURL **unp = n_unp ? xcalloc (n_unp, sizeof *unp) : NULL;
      n_unp = 0;
      for (xfer *x = e->to_unpause; x; x = x->next)
        {
          x->want_unpause = false;
          unp[n_unp++] = x->h;
        }
      e->to_unpause = NULL;
      bool stop = e->stop;
      pthread_mutex_unlock (&e->lock);
      /* Outside the lock: curl may call on_write from inside these. A
       * handle here cannot finish before this loop (only this thread
       * finishes transfers), so it is still valid. */
      while (add)
        {
          xfer *x = add;
          add = x->next;
          CURLMcode mc = curl_multi_add_handle (e->multi, x->h);
          if (mc != CURLM_OK)
            finish (e, x, CURLE_FAILED_INIT);
        }
      for (size_t i = 0; i < n_unp; i++)
        curl_easy_pause (unp[i], CURLPAUSE_CONT);
      if (stop && running == 0)
        break;
      curl_multi_perform (e->multi, &running);
      CURLMsg *msg;
      int left;
      while ((msg = curl_multi_info_read (e->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
          {
            CURL *h = msg->easy_handle;
            CURLcode res = msg->data.result;
            xfer *x = NULL;
            curl_easy_getinfo (h, CURLINFO_PRIVATE, (char **) &x);
            curl_multi_remove_handle (e->multi, h);
            if (x)
              finish (e, x, res);
          }
      curl_multi_poll (e->multi, NULL, 0, 1000, NULL);
    }
  return NULL;
}

static bool
engine_start (transfer_engine *e)
{
  pthread_mutex_lock (&e->lock);
  if (!e->started && !e->failed_start)
    {
      e->multi = curl_multi_init ();
      if (e->multi)
        {
          curl_multi_setopt (e->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
          curl_multi_setopt (e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) TRANSFER_MAX_HOST_CONNECTIONS);
        }
      if (e->multi && pthread_create (&e->thread, NULL, io_thread, e) == 0)
        e->started = true;
      else
        {
          log_debug ("transfer: no I/O thread, transfers run one by one");
          e->failed_start = true;
        }
    }
  bool ok = e->started;
  pthread_mutex_unlock (&e->lock);
  return ok;
}

typedef struct write_ctx
{
  transfer_engine *e;
  xfer *x;
} write_ctx;

/* I/O thread: buffer the bytes for the caller, or pause the transfer when
 * its buffer is full (curl hands the same bytes again after the unpause). */
static size_t
on_write (char *ptr, size_t size, size_t n, void *ud)
{
  write_ctx *w = ud;
  xfer *x = w->x;
  size_t len = size * n;
  pthread_mutex_lock (&w->e->lock);
  size_t ret = len;
  if (x->abort)
    ret = 0;
  else if (x->len > 0 && x->len + len > TRANSFER_BUFFER)
    {
      x->paused = true;
      ret = CURL_WRITEFUNC_PAUSE;
    }
  else
    {
      if (x->len + len > x->cap)
        {
          x->cap = x->len + len > TRANSFER_BUFFER ? x->len + len : TRANSFER_BUFFER;
          x->buf = xrealloc (x->buf, x->cap);
        }
      memcpy (x->buf + x->len, ptr, len);
      x->len += len;
      pthread_cond_signal (&x->cond);
    }
  pthread_mutex_unlock (&w->e->lock);
  return ret;
}

/* Caller thread, engine lock held: have the I/O thread resume a paused
 * transfer. Returns true when the I/O thread must be woken. */
static bool
queue_unpause (transfer_engine *e, xfer *x)
{
  if (!x->paused || x->want_unpause || x->done)
    return false;
  x->paused = false;
  x->want_unpause = true;
  x->next = e->to_unpause;
  e->to_unpause = x;
  return true;
}

CURLcode
transfer_perform (transfer_engine *e, CURL *h, curl_write_callback write_fn, void *write_ud)
{
  if (!e || !engine_start (e))
    {
      curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, write_fn);
      curl_easy_setopt (h, CURLOPT_WRITEDATA, write_ud);
      return curl_easy_perform (h);
    }
  xfer x;
  memset (&x, 0, sizeof x);
  x.h = h;
  pthread_cond_init (&x.cond, NULL);
  write_ctx w = { e, &x };
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &w);
  curl_easy_setopt (h, CURLOPT_PRIVATE, (char *) &x);
  /* Wait for a multiplexed HTTP/2 stream rather than open a new connection. */
  curl_easy_setopt (h, CURLOPT_PIPEWAIT, 1L);
  /* Two buffers: the I/O thread fills x.buf while the caller consumes the
   * other one. */
  char *spare = NULL;
  size_t spare_cap = 0;
  pthread_mutex_lock (&e->lock);
  x.next = e->to_add;
  e->to_add = &x;
  pthread_mutex_unlock (&e->lock);
  curl_multi_wakeup (e->multi);
  pthread_mutex_lock (&e->lock);
  for (;;)
    {
      while (x.len == 0 && !x.done)
        pthread_cond_wait (&x.cond, &e->lock);
      if (x.len == 0)
        break; /* done, everything consumed */
      char *data = x.buf;
      size_t len = x.len, cap = x.cap;
      x.buf = spare;
      x.cap = spare_cap;
      x.len = 0;
      bool wake = queue_unpause (e, &x);
      bool aborted = x.abort;
      pthread_mutex_unlock (&e->lock);
      if (wake)
        curl_multi_wakeup (e->multi);
      size_t got = aborted ? len : write_fn (data, 1, len, write_ud);
      spare = data;
      spare_cap = cap;
      pthread_mutex_lock (&e->lock);
      if (got != len && !x.abort)
        {
          /* A paused transfer must run again to notice the abort. */
          x.abort = true;
          if (queue_unpause (e, &x))
            curl_multi_wakeup (e->multi);
        }
    }
  CURLcode res = x.abort ? CURLE_WRITE_ERROR : x.result;
  pthread_mutex_unlock (&e->lock);
  curl_easy_setopt (h, CURLOPT_PRIVATE, NULL);
  free (x.buf);
  free (spare);
  pthread_cond_destroy (&x.cond);
  return res;
}

/* ---- job pool ---- */

typedef struct pool
{
  pthread_mutex_t lock;
  size_t n;
  size_t next;
  bool failed;
  kiln_error *err; /* the first failure */
  int (*job) (void *ctx, size_t i, kiln_error **err);
  void *ctx;
} pool;

static void *
pool_worker (void *arg)
{
  pool *p = arg;
  for (;;)
    {
      pthread_mutex_lock (&p->lock);
      size_t i = p->next++;
      bool stop = p->failed || i >= p->n;
      pthread_mutex_unlock (&p->lock);
      if (stop)
        break;
      kiln_error *err = NULL;
      if (p->job (p->ctx, i, &err) < 0)
        {
          pthread_mutex_lock (&p->lock);
          if (!p->failed)
            {
              p->failed = true;
              p->err = err;
              err = NULL;
            }
          pthread_mutex_unlock (&p->lock);
          kiln_error_free (err);
          break;
        }
    }
  return NULL;
}

int
transfer_jobs (size_t n, size_t parallel, int (*job) (void *ctx, size_t i, kiln_error **err), void *ctx,
               kiln_error **err)
{
  if (n == 0)
    return 0;
  pool p = { PTHREAD_MUTEX_INITIALIZER, n, 0, false, NULL, job, ctx };
  if (parallel == 0)
    parallel = 1;
  size_t nt = n < parallel ? n : parallel;
  autofree pthread_t *th = xcalloc (nt, sizeof *th);
  size_t started = 0;
  /* The calling thread is one of the workers. */
  for (; started + 1 < nt; started++)
    if (pthread_create (&th[started], NULL, pool_worker, &p) != 0)
      break;
  pool_worker (&p);
  for (size_t i = 0; i < started; i++)
    pthread_join (th[i], NULL);
  pthread_mutex_destroy (&p.lock);
  if (p.failed)
    {
      kiln_error_free (*err);
      *err = p.err;
      return -1;
    }
  return 0;
}
