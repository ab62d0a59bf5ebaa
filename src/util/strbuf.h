/* strbuf.h - growable byte buffer (git's strbuf).
 *
 * buf is always NUL-terminated and never NULL after strbuf_init(), so it can
 * be used as a C string; len excludes the NUL. Binary data may contain NULs.
 */
#ifndef KILN_UTIL_STRBUF_H
#define KILN_UTIL_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct strbuf
{
  char *buf;
  size_t len;
  size_t alloc;
} strbuf;

#define STRBUF_INIT { strbuf_empty_, 0, 0 }
extern char strbuf_empty_[];

void strbuf_init (strbuf *sb, size_t hint);
void strbuf_release (strbuf *sb);
void cleanup_strbufp (strbuf *sb);
#define autostrbuf __attribute__ ((cleanup (cleanup_strbufp)))

/* Return the buffer (caller frees) and reset sb to empty. */
char *strbuf_detach (strbuf *sb, size_t *len);
void strbuf_reset (strbuf *sb);
/* Ensure room for extra more bytes plus the NUL. */
void strbuf_grow (strbuf *sb, size_t extra);
void strbuf_setlen (strbuf *sb, size_t len);

void strbuf_add (strbuf *sb, const void *data, size_t len);
void strbuf_adds (strbuf *sb, const char *s);
void strbuf_addch (strbuf *sb, int c);
void strbuf_addf (strbuf *sb, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void strbuf_vaddf (strbuf *sb, const char *fmt, va_list ap) __attribute__ ((format (printf, 2, 0)));
/* Append s with JSON string escaping, without the surrounding quotes. A byte
 * that does not start a well-formed UTF-8 sequence becomes U+FFFD, so the
 * result is valid JSON whatever s holds (a RUN step's output). */
void strbuf_add_json_escaped (strbuf *sb, const char *s, size_t len);

/* Remove trailing whitespace. */
void strbuf_rtrim (strbuf *sb);

#endif
