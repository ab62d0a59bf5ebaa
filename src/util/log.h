/* log.h - leveled logging to stderr, as plain text or JSON lines.
 *
 * The logger is process-wide configuration set once by main(); writes are
 * whole lines, serialised so threads never interleave within a line.
 * Secrets must never be passed to these functions.
 */
#ifndef KILN_UTIL_LOG_H
#define KILN_UTIL_LOG_H

#include <stdbool.h>
#include <stdio.h>
#include "util/error.h"

typedef enum
{
  LOG_LEVEL_ERROR = 0,
  LOG_LEVEL_WARN,
  LOG_LEVEL_INFO,
  LOG_LEVEL_DEBUG,
  LOG_LEVEL_TRACE,
} log_level;

typedef enum
{
  LOG_FORMAT_TEXT = 0,
  LOG_FORMAT_JSON,
  LOG_FORMAT_COLOR, /* text with the level in ANSI colours (kaniko's default, logrus' ForceColors) */
} log_format;

/* Accepts error, warn, info, debug, trace, and kaniko's panic and fatal
 * (both meaning error). */
int log_parse_level (const char *s, log_level *out, kiln_error **err);
/* Accepts text, json and color; anything else is an error. */
int log_parse_format (const char *s, log_format *out, kiln_error **err);
const char *log_level_name (log_level l);

/* out may be NULL for stderr. */
void log_setup (log_level level, log_format format, bool timestamps, FILE *out);
bool log_enabled (log_level level);
/* Whether log lines are JSON objects (then main prints its error as one:
 * {"event":"error","level":"error","msg":...}). */
bool log_is_json (void);
void log_msg (log_level level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#define log_error(...) log_msg (LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg (LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg (LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg (LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_trace(...) log_msg (LOG_LEVEL_TRACE, __VA_ARGS__)

#endif
