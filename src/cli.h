/*
 * cli: echod's command line, parsed without getopt's hidden state.
 * Map: parser layer; calls errmsg, policy.
 */
#ifndef ECHOD_CLI_H
#define ECHOD_CLI_H

#include "policy.h"

#include <stdbool.h>

struct options {
	const char *config; /* -c, NULL for the built-in policy */
	bool check_only;    /* -t, and -T */
	bool print_policy;  /* -T: print the effective policy, not ok */
	struct endpoint listen[POLICY_MAX_LISTEN]; /* -l, repeatable */
	size_t nlisten;
	bool port_set; /* -p */
	uint16_t port;
	const char *user; /* -u */
	bool workers_set; /* -w */
	unsigned workers; /* 0 = auto */
	int verbose;      /* -v, repeatable */
	bool version;     /* -V */
	bool help;        /* -h */
};

/* Parse argv; pure. 0, or -1 with a one-line reason in err. */
int cli_parse(int argc, char *const argv[], struct options *o, char *err,
              size_t errlen);

/* Lay the flags over the policy: -l replaces listen, -p fills ports, ... */
void cli_apply(const struct options *o, struct policy *p);

/* After cli_apply: 0, or -1 if two listen addresses became the same once
 * their ports were filled in ("127.0.0.1" and "127.0.0.1:7" with -p 7). */
int cli_check_listen(const struct policy *p, char *err, size_t errlen);

/* The usage text, for -h (stdout) and for errors (stderr). */
extern const char cli_usage[];

#endif
