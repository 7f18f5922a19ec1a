/*
 * errmsg: how a module says what failed: a message in the caller's buffer
 * and -1, so callers decide where it goes (log, stderr, FILE:LINE).
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_ERRMSG_H
#define ECHOD_ERRMSG_H

#include <stddef.h>

/* printf into buf (always NUL-terminated), then return -1. */
int errmsg(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
