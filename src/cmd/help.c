/* help.c - the command table, kiln's usage and `kiln help`. */
#include "cmd/cmd.h"
#include "util/alloc.h"
#include "util/cli.h"

#include <string.h>

const cmd_entry cmd_table[] = {
  { "build", cmd_build_main, "build an image from a Dockerfile" },
  { "pull", cmd_pull_main, "pull an image from a registry into an OCI layout" },
  { "warm", cmd_warm_main, "pull images into the store ahead of builds (kaniko's warmer)" },
  { "push", cmd_push_main, "push an image from an OCI layout to registries" },
  { "prune", cmd_prune_main, "remove unreferenced layers and blobs from the store" },
  { "run", cmd_run_main, "run a command in an image (or a directory) inside the step sandbox" },
  { "version", cmd_version_main, "print version information" },
  { "help", cmd_help_main, "show help for kiln or a command" },
};
const size_t cmd_table_count = ARRAY_SIZE (cmd_table);

void
cmd_usage (FILE *out)
{
  fprintf (out, "kiln - build OCI images from Dockerfiles, without a daemon and without root\n\n"
                "Usage: kiln COMMAND [FLAGS] [ARGS]\n\nCommands:\n");
  for (size_t i = 0; i < cmd_table_count; i++)
    fprintf (out, "  %-10s %s\n", cmd_table[i].name, cmd_table[i].summary);
  fprintf (out, "\nRun 'kiln COMMAND --help' for a command's flags.\n");
}

const cmd_entry *
cmd_find (const char *name)
{
  for (size_t i = 0; i < cmd_table_count; i++)
    if (strcmp (cmd_table[i].name, name) == 0)
      return &cmd_table[i];
  return NULL;
}

int
cmd_help_main (int argc, char **argv, kiln_error **err)
{
  if (argc < 2)
    {
      cmd_usage (stdout);
      return KILN_EXIT_OK;
    }
  const cmd_entry *c = cmd_find (argv[1]);
  if (c == NULL)
    {
      kiln_error_make (err, 0, "kiln help: unknown command '%s'", argv[1]);
      return KILN_EXIT_USAGE;
    }
  char *hargv[] = { (char *) c->name, (char *) "--help", NULL };
  return c->fn (2, hargv, err);
}
