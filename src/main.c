/* main.c - kiln command-line entry point: find the command (src/cmd/), run
 * it, print its error. */
#include "cmd/cmd.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/error.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <stdio.h>
#include <string.h>

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      cmd_usage (stderr);
      return KILN_EXIT_USAGE;
    }
  const char *name = argv[1];
  if (strcmp (name, "--help") == 0 || strcmp (name, "-h") == 0)
    name = "help";
  else if (strcmp (name, "--version") == 0)
    name = "version";
  const cmd_entry *c = cmd_find (name);
  if (c == NULL)
    {
      fprintf (stderr, "kiln: unknown command '%s'\n\n", argv[1]);
      cmd_usage (stderr);
      return KILN_EXIT_USAGE;
    }
  kiln_error *err = NULL;
  int rc = c->fn (argc - 1, argv + 1, &err);
  if (rc != KILN_EXIT_OK || err)
    {
      autofree char *msg = kiln_error_string (err);
      if (log_is_json ())
        {
          /* --progress=json / --log-format=json: the error is an event too. */
          autostrbuf strbuf line = STRBUF_INIT;
          strbuf_adds (&line, "{\"event\":\"error\",\"level\":\"error\",\"msg\":\"");
          strbuf_add_json_escaped (&line, msg, strlen (msg));
          strbuf_addf (&line, "\",\"exit\":%d}\n", rc == KILN_EXIT_OK ? KILN_EXIT_FAILURE : rc);
          fputs (line.buf, stderr);
        }
      else
        fprintf (stderr, "kiln: error: %s\n", msg);
      kiln_error_free (err);
      if (rc == KILN_EXIT_OK)
        rc = KILN_EXIT_FAILURE;
    }
  return rc;
}
