/* test_transfer.c - the curl multi transfer engine and the job pool.
 *
 * Transfers come from a minimal HTTP/1.1 server on a loopback socket run by
 * the test (one thread per connection, files from the fixture directory):
 * several at once from pool threads, with a slow consumer so the engine must
 * pause and resume, and a consumer that fails part-way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/testutil.h"
#include "registry/transfer.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

#define FILE_SIZE (5 * 1024 * 1024 + 123)
#define N_FILES 5

typedef struct fixture
{
  char *dir;
  int dfd;
  int lfd; /* listening socket */
  int port;
  pthread_t server;
  char digests[N_FILES][DIGEST_STRING_SIZE];
  transfer_engine *e;
} fixture;

static void
write_all (int fd, const void *p, size_t n)
{
  const char *c = p;
  while (n > 0)
    {
      ssize_t w = send (fd, c, n, MSG_NOSIGNAL); /* the client may hang up */
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return; /* the client went away */
      c += w;
      n -= (size_t) w;
    }
}

typedef struct conn
{
  int fd;
  int dfd;
} conn;

/* "GET /NAME HTTP/1.1": the file NAME, or 404; keep-alive until EOF. */
static void *
serve_conn (void *arg)
{
  conn *c = arg;
  char req[4096];
  size_t have = 0;
  for (;;)
    {
      char *end = have ? memmem (req, have, "\r\n\r\n", 4) : NULL;
      if (!end)
        {
          if (have == sizeof req)
            break;
          ssize_t r = read (c->fd, req + have, sizeof req - have);
          if (r <= 0)
            break;
          have += (size_t) r;
          continue;
        }
      char name[64] = "";
      sscanf (req, "GET /%63[^ ]", name);
      size_t used = (size_t) (end + 4 - req);
      memmove (req, req + used, have - used);
      have -= used;
      int fd = name[0] ? openat (c->dfd, name, O_RDONLY | O_CLOEXEC) : -1;
      struct stat st;
      if (fd < 0 || fstat (fd, &st) < 0)
        {
          const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
          write_all (c->fd, nf, strlen (nf));
          if (fd >= 0)
            close (fd);
          continue;
        }
      char hdr[128];
      int hl = snprintf (hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n", (long long) st.st_size);
      write_all (c->fd, hdr, (size_t) hl);
      char buf[65536];
      ssize_t r;
      while ((r = read (fd, buf, sizeof buf)) > 0)
        write_all (c->fd, buf, (size_t) r);
      close (fd);
    }
  close (c->fd);
  free (c);
  return NULL;
}

static void *
serve (void *arg)
{
  fixture *f = arg;
  for (;;)
    {
      int fd = accept4 (f->lfd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0)
        {
          if (errno == EINTR || errno == ECONNABORTED)
            continue;
          return NULL; /* the listening socket was shut down */
        }
      conn *c = xmalloc (sizeof *c);
      c->fd = fd;
      c->dfd = f->dfd;
      pthread_t t;
      if (pthread_create (&t, NULL, serve_conn, c) != 0)
        {
          close (fd);
          free (c);
          continue;
        }
      pthread_detach (t);
    }
}

static void
server_start (fixture *f)
{
  f->lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (f->lfd >= 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  assert_int_equal (bind (f->lfd, (struct sockaddr *) &a, sizeof a), 0);
  assert_int_equal (listen (f->lfd, 16), 0);
  socklen_t al = sizeof a;
  assert_int_equal (getsockname (f->lfd, (struct sockaddr *) &a, &al), 0);
  f->port = ntohs (a.sin_port);
  assert_int_equal (pthread_create (&f->server, NULL, serve, f), 0);
}

static int
setup (void **state)
{
  fixture *f = xzalloc (sizeof *f);
  f->dir = test_mkdtemp (&f->dfd);
  autofree unsigned char *buf = xmalloc (FILE_SIZE);
  for (int i = 0; i < N_FILES; i++)
    {
      for (size_t k = 0; k < FILE_SIZE; k++)
        buf[k] = (unsigned char) ((k * 31 + (size_t) i * 7 + k / 4096) & 0xff);
      autofree char *name = xasprintf ("f%d", i);
      kiln_error *err = NULL;
      assert_ok (fs_write_file_atomic_at (f->dfd, name, buf, FILE_SIZE, 0644, &err), err);
      digest_buffer (buf, FILE_SIZE, f->digests[i]);
    }
  f->e = transfer_engine_new ();
  server_start (f);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fixture *f = *state;
  transfer_engine_unref (f->e);
  shutdown (f->lfd, SHUT_RDWR);
  pthread_join (f->server, NULL);
  close (f->lfd);
  close (f->dfd);
  test_rmtree (f->dir);
  free (f->dir);
  free (f);
  return 0;
}

typedef struct sink
{
  digest_ctx *dg;
  size_t got;
  size_t fail_after; /* 0: never */
  bool slow;
} sink;

static size_t
on_write (char *p, size_t size, size_t n, void *ud)
{
  sink *s = ud;
  size_t len = size * n;
  if (s->fail_after && s->got + len > s->fail_after)
    return 0;
  digest_update (s->dg, p, len);
  s->got += len;
  if (s->slow)
    {
      /* Slower than file reads: the engine's buffer fills and the transfer
       * is paused and resumed many times. */
      struct timespec ts = { 0, 2 * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
  return len;
}

static CURLcode
fetch (fixture *f, int i, sink *s)
{
  CURL *h = curl_easy_init ();
  autofree char *url = xasprintf ("http://127.0.0.1:%d/f%d", f->port, i);
  curl_easy_setopt (h, CURLOPT_URL, url);
  CURLcode c = transfer_perform (f->e, h, on_write, s);
  curl_easy_cleanup (h);
  return c;
}

typedef struct job_ctx
{
  fixture *f;
  pthread_mutex_t lock;
  int ran[N_FILES];
} job_ctx;

static int
job_fetch (void *arg, size_t i, kiln_error **err)
{
  job_ctx *j = arg;
  sink s = { digest_new (), 0, 0, true };
  CURLcode c = fetch (j->f, (int) i, &s);
  char d[DIGEST_STRING_SIZE];
  digest_final (s.dg, d);
  digest_free (s.dg);
  pthread_mutex_lock (&j->lock);
  j->ran[i]++;
  pthread_mutex_unlock (&j->lock);
  if (c != CURLE_OK)
    return kiln_error_make (err, 0, "file %zu: %s", i, curl_easy_strerror (c));
  if (s.got != FILE_SIZE || strcmp (d, j->f->digests[i]) != 0)
    return kiln_error_make (err, 0, "file %zu: got %zu bytes, digest %s", i, s.got, d);
  return 0;
}

static void
test_parallel_paused_transfers (void **state)
{
  fixture *f = *state;
  job_ctx j = { f, PTHREAD_MUTEX_INITIALIZER, { 0 } };
  autoerror kiln_error *err = NULL;
  assert_ok (transfer_jobs (N_FILES, 3, job_fetch, &j, &err), err);
  for (int i = 0; i < N_FILES; i++)
    assert_int_equal (j.ran[i], 1);
  /* The engine is reusable after a round. */
  assert_ok (transfer_jobs (2, 2, job_fetch, &j, &err), err);
}

static void
test_consumer_failure_aborts (void **state)
{
  fixture *f = *state;
  sink s = { digest_new (), 0, 1000 * 1000, false };
  assert_int_equal (fetch (f, 0, &s), CURLE_WRITE_ERROR);
  assert_true (s.got <= 1000 * 1000);
  digest_free (s.dg);
  /* And the next transfer on the engine works. */
  sink ok = { digest_new (), 0, 0, false };
  assert_int_equal (fetch (f, 1, &ok), CURLE_OK);
  assert_int_equal (ok.got, FILE_SIZE);
  digest_free (ok.dg);
}

static void
test_not_found (void **state)
{
  fixture *f = *state;
  sink s = { digest_new (), 0, 0, false };
  /* A 404 is a normal end of transfer for the engine (the client judges
   * statuses); its empty body reaches the consumer as nothing. */
  assert_int_equal (fetch (f, 99, &s), CURLE_OK);
  assert_int_equal (s.got, 0);
  digest_free (s.dg);
}

typedef struct fail_ctx
{
  pthread_mutex_t lock;
  int started;
} fail_ctx;

static int
job_fail_third (void *arg, size_t i, kiln_error **err)
{
  fail_ctx *c = arg;
  pthread_mutex_lock (&c->lock);
  c->started++;
  pthread_mutex_unlock (&c->lock);
  if (i == 2)
    return kiln_error_make (err, 0, "job %zu failed", i);
  return 0;
}

static void
test_jobs_stop_at_first_failure (void **state)
{
  (void) state;
  fail_ctx c = { PTHREAD_MUTEX_INITIALIZER, 0 };
  autoerror kiln_error *err = NULL;
  assert_int_equal (transfer_jobs (1000, 1, job_fail_third, &c, &err), -1);
  assert_true (test_err_contains (err, "job 2 failed"));
  /* One worker: jobs 0, 1, 2 and nothing after. */
  assert_int_equal (c.started, 3);
  autoerror kiln_error *e2 = NULL;
  fail_ctx c2 = { PTHREAD_MUTEX_INITIALIZER, 0 };
  assert_int_equal (transfer_jobs (1000, 3, job_fail_third, &c2, &e2), -1);
  assert_true (c2.started < 1000);
  assert_int_equal (transfer_jobs (0, 3, job_fail_third, &c2, &e2), 0);
}

int
main (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_parallel_paused_transfers, setup, teardown),
    cmocka_unit_test_setup_teardown (test_consumer_failure_aborts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_not_found, setup, teardown),
    cmocka_unit_test (test_jobs_stop_at_first_failure),
  };
  int r = cmocka_run_group_tests (tests, NULL, NULL);
  curl_global_cleanup ();
  return r;
}
