/*
 * config: the policy a start or a reload builds from the file and the
 * flags, so both check alike: the built-in defaults, the file (-c), then
 * the flags over them. Each call returns 0, or the exit status of the
 * mistake (exitcodes.h) with its message in err: FILE:LINE: message for
 * the file, "echod: ..." for the rest.
 * Map: bootstrap layer; calls cli, errmsg, exitcodes, policy, reload.
 */
#ifndef ECHOD_CONFIG_H
#define ECHOD_CONFIG_H

#include "cli.h"
#include "policy.h"

#include <stddef.h>

/* The start: read o->config (if any) and build *p from it and the flags.
 * The flags are kept (o must outlive every config_build) for a reload. */
int config_load(const struct options *o, struct policy *p, char *err,
                size_t errlen);

/* A reload (reload_build_fn): *p from a file's text and the flags that
 * config_load was given. */
int config_build(const char *text, size_t len, struct policy *p, char *err,
                 size_t errlen);

/* -T: the policy in force on stdout, in the file's syntax, and its
 * digest. */
int config_print(const struct policy *p, char *err, size_t errlen);

#endif
