/*
 * reader: the policy reader, the one process that may read the policy file
 * once echod serves. It is forked before the supervisor's sandbox, runs as
 * the service user in the chroot with no capability, and may read files
 * beneath the policy file's directory and nothing else (Landlock), with a
 * seccomp list of its own (policy/seccomp-reader.list). It parses nothing:
 * on a request it sends the file's bytes, or why it could not, back to the
 * supervisor (the exchange is reload.h's), which parses them as a pure
 * function over a buffer.
 * Map: bootstrap layer; calls errmsg, exitcodes, landlock, log, policy,
 * privdrop, reload, sandbox.
 */
#ifndef ECHOD_READER_H
#define ECHOD_READER_H

#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* While the filesystem is still visible (before the chroot): keep an
 * O_PATH descriptor of path's directory and its last component. 0, or -1
 * with the reason in err. */
int reader_open(const char *path, char *err, size_t errlen);

/*
 * After the user change, before the supervisor's own sandbox: fork the
 * reader, which keeps the directory, stderr and its end of a socketpair,
 * and nothing else. Returns the supervisor's end (non-blocking, close on
 * exec), or -1 with the step that failed in *step (as docs/design.md names
 * the bootstrap's: seccomp, landlock, rlimits, or policy_reader) and the
 * reason in err. From p: the log level, `sandbox-violation`.
 */
int reader_start(const struct policy *p, const char **step, char *err,
                 size_t errlen);

#endif
