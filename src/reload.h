/*
 * reload: SIGHUP's reload of the policy, without closing a connection.
 *
 * The supervisor asks the policy reader (reader.h) for the file, or takes
 * the built-in text, and builds the new policy from it exactly as the
 * start-up does (the caller's build function: defaults, the file, the
 * flags). It refuses the result, and keeps the old policy whole, if the
 * file is bad, if a keyword that only a restart can change differs, or if
 * the XDP prefilter, loaded with the old policy, would drop what the new
 * one echoes. Else the new policy is the live one: the supervisor copies
 * it down a pipe of each worker's own, and each worker lays it over its
 * own copy between two events, keeping its rate and loop tables.
 * Map: process layer; calls counters, log, loop, policy, siphash.
 */
#ifndef ECHOD_RELOAD_H
#define ECHOD_RELOAD_H

#include "loop.h"
#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELOAD_DIGEST_LEN 17 /* 16 hex digits and a NUL */

/*
 * The exchange with the policy reader (reader.h) on its socket: one byte
 * asks for the file; the reply is this head and len bytes: the file when
 * status is 0, else why it could not be read. The reader's first reply,
 * unasked, says it is ready: status 0 and no bytes, 1 and why it cannot
 * read the file yet, or -1 and why it could not start.
 */
struct reload_reply {
	int32_t status;
	uint32_t len;
};

/* Build a policy from a file's text (NULL: the built-in policy) as the
 * start-up does; 0, or the exit status of the mistake (exitcodes.h)
 * with "FILE:LINE: message" in err. */
typedef int (*reload_build_fn)(const char *text, size_t len, struct policy *p,
                               char *err, size_t errlen);

struct reload;

/*
 * live: the policy in force, which reload changes in place (the workers'
 * copies are their own). file: the -c path, whose reader (reader.h)
 * answers on reader_fd; NULL (and -1) for the built-in policy. prefilter:
 * the XDP prefilter is attached. NULL on allocation failure.
 */
struct reload *reload_new(struct policy *live, unsigned nworkers,
                          const char *file, int reader_fd,
                          reload_build_fn build, bool prefilter);
void reload_free(struct reload *r);

/* Watch the reader's replies on the supervisor's loop. 0, or -1. */
int reload_watch(struct reload *r, struct loop *l);

/* SIGHUP: read the policy again; the outcome is logged (event=reload or
 * event=reload_refused) when the reply is in. */
void reload_begin(struct reload *r);

/* Before forking worker i: a fresh pipe; *worker_end is the worker's
 * read end, which the supervisor closes after the fork. 0, or -1. */
int reload_attach(struct reload *r, unsigned i, int *worker_end);
/* Worker i is gone: close its pipe. */
void reload_detach(struct reload *r, unsigned i);
/* In a new worker: close the supervisor's ends (of every worker's pipe)
 * and the reader's socket. */
void reload_close_for_worker(struct reload *r);
/* Supervisor tick: go on sending a policy a full pipe held back, then
 * apply a reload deferred until every worker had the last one. */
void reload_tick(struct reload *r);

/* In a worker: read what arrived on fd (its end). 1 when a whole policy
 * arrived and now is r's live one, 0 if none is whole yet, -1 at end of
 * file (the supervisor is gone). */
int reload_receive(struct reload *r, int fd);

/* The live policy's digest, as event=reload and the metrics say it. */
const char *reload_digest(const struct reload *r);

/* The digest of p: SipHash-2-4 under the zero key of policy_print's text,
 * in hex; the same for a policy and what `echod -T` prints of it. */
void reload_digest_of(const struct policy *p, char out[RELOAD_DIGEST_LEN]);

/* A built-in list p no longer covers, said in one warning line (event
 * policy_default_lost); false if p covers it all. */
bool reload_warn_lost_defaults(const struct policy *p);

/* Why the XDP prefilter, loaded with old, would drop what new echoes: the
 * keyword, or NULL if new only tightens what the prefilter checks. */
const char *reload_xdp_loosens(const struct policy *old,
                               const struct policy *new_policy);

/* Can keyword change without a restart? */
bool reload_keyword_live(const char *keyword);

#endif
