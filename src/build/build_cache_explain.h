/* build_cache_explain.h - the components of a build cache key, recorded
 * with each entry, and why a step missed.
 *
 * While a step's key is folded (build_cache_key_add and
 * build_cache_key_add_changes), a cache_components attached to the key
 * records what went in: the parent key, every named field (instruction
 * kind, expanded arguments, flags, heredoc bodies, the build-args a RUN
 * sees, mounted stages and images), and for change lists one short digest
 * per file (named by its context path when it comes from the context, else
 * its path in the layer). Besides the key, the step's context is noted:
 * its instruction text, USER/WORKDIR/SHELL/platform and the stage's steps
 * so far with their keys (its "ancestry"). Secret values never reach a key,
 * so never a component either.
 *
 * Components are stored as JSON (cache_components_to_json) in the entry's
 * config, label CACHE_COMPONENTS_LABEL; they travel through --cache-repo
 * with the entry and are parsed back (cache_components_parse: registry
 * data, untrusted, see tests/fuzz/fuzz_cache_components.c). Size is bounded:
 * at most CACHE_COMPONENTS_MAX_FILES files (and about 1 MiB of them), then
 * one digest of the rest; field values over 256 bytes are kept as their
 * digest.
 *
 * cache_explain compares the components of the closest earlier entry with
 * the step's own and says what differs, as text for people ("build-arg
 * VERSION changed (1.2 -> 1.3)") and as a JSON object for --progress=json
 * ({"reason":"build_arg_changed","text":...,"reasons":[...]}).
 */
#ifndef KILN_BUILD_BUILD_CACHE_EXPLAIN_H
#define KILN_BUILD_BUILD_CACHE_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include "util/error.h"

#define CACHE_COMPONENTS_LABEL "dev.kiln.cache.components"
#define CACHE_COMPONENTS_MAX_FILES 10000
#define CACHE_COMPONENTS_MAX_SIZE (4u << 20)

typedef struct cache_components cache_components;

cache_components *cache_components_new (void);
void cache_components_free (cache_components *c);
void cleanup_cache_componentsp (cache_components **c);
#define autocomponents __attribute__ ((cleanup (cleanup_cache_componentsp)))

/* The key's parent (the stage's key before the step). */
void cache_components_set_parent (cache_components *c, const char *parent);
/* A field folded into the key (between file_begin and file_end: part of
 * that file's digest instead). */
void cache_components_add (cache_components *c, const char *field, const char *value);
/* A file of a change list: name as shown to users. */
void cache_components_file_begin (cache_components *c, const char *name);
void cache_components_file_end (cache_components *c);
/* Context of the step, not folded into the key: "instruction", "user",
 * "workdir", "shell", "platform", "from-name" (what COPY --from names). */
void cache_components_note (cache_components *c, const char *what, const char *value);
/* One earlier step of the stage: its label ("1" is FROM, "3", "onbuild 1"),
 * instruction kind, the stage's key after it, and (this build only, not
 * stored) whether it missed the cache and ran. */
void cache_components_ancestor (cache_components *c, const char *label, const char *kind, const char *key, bool ran);

/* Serialise (compact JSON object). */
int cache_components_to_json (const cache_components *c, char **out, size_t *len, kiln_error **err);
/* Parse what cache_components_to_json wrote (or anything: untrusted). */
int cache_components_parse (const char *json, size_t len, cache_components **out, kiln_error **err);

/* How far old is from now: 0 identical keys' inputs; more for each
 * differing part (a different parent counts most). For choosing the
 * closest earlier entry. */
unsigned cache_components_distance (const cache_components *old, const cache_components *now);

/* Why now missed, given the closest earlier entry old (NULL: none).
 * *text: one line ("src/a.txt changed (and 2 more files)"); *json: an
 * object {"reason":CODE,"text":...,"reasons":[{"reason":CODE,...},...]}
 * where CODE is no_earlier_build, instruction_changed, arguments_changed,
 * build_arg_changed, files_changed, source_changed (a stage or image a
 * step copies or mounts from), parent_changed. Caller frees both. */
void cache_explain (const cache_components *old, const cache_components *now, char **text, char **json);

#endif
