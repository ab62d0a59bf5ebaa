/* log.c - leveled logging. */
#include "util/log.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

/* The one piece of process-wide state: logging is configured once by main
 * and read from every thread. */
static struct
{
  log_level level;
  log_format format;
  bool timestamps;
  FILE *out;
  pthread_mutex_t lock;
} log_cfg = { LOG_LEVEL_INFO, LOG_FORMAT_TEXT, false, NULL, PTHREAD_MUTEX_INITIALIZER };

static const char *const level_names[] = {
  [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARN] = "warn", [LOG_LEVEL_INFO] = "info",
  [LOG_LEVEL_DEBUG] = "debug", [LOG_LEVEL_TRACE] = "trace",
};

const char *
log_level_name (log_level l)
{
  switch (l)
    {
    case LOG_LEVEL_ERROR:
    case LOG_LEVEL_WARN:
    case LOG_LEVEL_INFO:
    case LOG_LEVEL_DEBUG:
    case LOG_LEVEL_TRACE:
      return level_names[l];
    }
  return "unknown";
}

int
log_parse_level (const char *s, log_level *out, kiln_error **err)
{
  for (size_t i = 0; i < ARRAY_SIZE (level_names); i++)
    if (strcmp (s, level_names[i]) == 0)
      {
        *out = (log_level) i;
        return 0;
      }
  if (strcmp (s, "panic") == 0 || strcmp (s, "fatal") == 0)
    {
      *out = LOG_LEVEL_ERROR;
      return 0;
    }
  if (strcmp (s, "warning") == 0)
    {
      *out = LOG_LEVEL_WARN;
      return 0;
    }
  return kiln_error_make (err, 0, "invalid verbosity '%s' (expected error, warn, info, debug or trace)", s);
}

int
log_parse_format (const char *s, log_format *out, kiln_error **err)
{
  if (strcmp (s, "text") == 0)
    *out = LOG_FORMAT_TEXT;
  else if (strcmp (s, "color") == 0)
    *out = LOG_FORMAT_COLOR;
  else if (strcmp (s, "json") == 0)
    *out = LOG_FORMAT_JSON;
  else
    return kiln_error_make (err, 0, "invalid log format '%s' (expected text, color or json)", s);
  return 0;
}

void
log_setup (log_level level, log_format format, bool timestamps, FILE *out)
{
  log_cfg.level = level;
  log_cfg.format = format;
  log_cfg.timestamps = timestamps;
  log_cfg.out = out;
}

bool
log_is_json (void)
{
  return log_cfg.format == LOG_FORMAT_JSON;
}

bool
log_enabled (log_level level)
{
  return level <= log_cfg.level;
}

static void
format_time (char *buf, size_t n)
{
  struct timespec ts;
  struct tm tm;
  clock_gettime (CLOCK_REALTIME, &ts);
  gmtime_r (&ts.tv_sec, &tm);
  size_t k = strftime (buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf (buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

void
log_msg (log_level level, const char *fmt, ...)
{
  if (!log_enabled (level))
    return;
  va_list ap;
  va_start (ap, fmt);
  autofree char *msg = xvasprintf (fmt, ap);
  va_end (ap);

  char when[40] = "";
  if (log_cfg.timestamps || log_cfg.format == LOG_FORMAT_JSON)
    format_time (when, sizeof when);

  autostrbuf strbuf line = STRBUF_INIT;
  switch (log_cfg.format)
    {
    case LOG_FORMAT_JSON:
      strbuf_addf (&line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", when, log_level_name (level));
      strbuf_add_json_escaped (&line, msg, strlen (msg));
      strbuf_adds (&line, "\"}\n");
      break;
    case LOG_FORMAT_TEXT:
    case LOG_FORMAT_COLOR:
      if (log_cfg.timestamps)
        strbuf_addf (&line, "%s ", when);
      if (log_cfg.format == LOG_FORMAT_COLOR)
        {
          /* logrus' colours: red, yellow, blue, grey */
          static const int colour[] = { [LOG_LEVEL_ERROR] = 31, [LOG_LEVEL_WARN] = 33, [LOG_LEVEL_INFO] = 36,
                                        [LOG_LEVEL_DEBUG] = 37, [LOG_LEVEL_TRACE] = 37 };
          strbuf_addf (&line, "\033[%dm%s\033[0m: ", colour[level], log_level_name (level));
        }
      else if (level != LOG_LEVEL_INFO)
        strbuf_addf (&line, "%s: ", log_level_name (level));
      strbuf_adds (&line, msg);
      strbuf_addch (&line, '\n');
      break;
    }
  FILE *out = log_cfg.out ? log_cfg.out : stderr;
  pthread_mutex_lock (&log_cfg.lock);
  fwrite (line.buf, 1, line.len, out);
  fflush (out);
  pthread_mutex_unlock (&log_cfg.lock);
}
