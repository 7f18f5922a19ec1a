/*
 * exitcodes: how echod and its workers end, as sysexits(3) names them; the
 * one place the numbers live (SECURITY.md and the man page promise them).
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_EXITCODES_H
#define ECHOD_EXITCODES_H

#include <stdbool.h>
#include <sysexits.h>

#define EXIT_USAGE    EX_USAGE    /* 64: a bad flag */
#define EXIT_SOFTWARE EX_SOFTWARE /* 70: a worker kept crashing, or a bug */
#define EXIT_OSERR    EX_OSERR    /* 71: cannot bind or harden: refused */
#define EXIT_CONFIG   EX_CONFIG   /* 78: the policy: FILE:LINE: message */

/* A worker that ends so before it is ready refused to start: restarting
 * it would only fail again. */
static inline bool
exit_is_refusal(int status)
{
	return status == EXIT_USAGE || status == EXIT_OSERR ||
	       status == EXIT_CONFIG;
}

#endif
