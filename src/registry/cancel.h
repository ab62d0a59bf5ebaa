/* cancel.h - SIGINT/SIGTERM for `kiln pull` and `kiln push`.
 *
 * The handler only records the signal. The registry client polls the flag
 * (registry_options.cancel) during transfers and backoff sleeps and fails
 * the running request with "interrupted by SIGINT"; every caller then
 * unwinds through its normal error path, which already discards temporary
 * blobs, half-written archives and staging directories. The command exits
 * with 128 + the signal number, as a shell reports a killed command.
 */
#ifndef KILN_REGISTRY_CANCEL_H
#define KILN_REGISTRY_CANCEL_H

#include <signal.h>

/* Install the handlers (SA_RESTART: the client's waits are short and poll
 * the flag). Returns the flag: 0, or the signal number once one arrived. */
const volatile sig_atomic_t *registry_cancel_install (void);

/* 128 + signal when a signal arrived, else rc. */
int registry_cancel_exit_code (int rc);

#endif
