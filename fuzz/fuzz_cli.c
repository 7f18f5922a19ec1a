/*
 * fuzz_cli: echod's command line. The input, split on NUL bytes, is
 * argv[1..] (argv[0] = "echod", at most 64 arguments, argv[argc] = NULL as
 * execve guarantees). On success the options are laid over the built-in
 * policy with cli_apply.
 *
 * Invariants: on error the message is non-empty and NUL-terminated; on
 * success nlisten <= POLICY_MAX_LISTEN before and after cli_apply, every
 * listen address has a port after cli_apply (its own, -p, or 7), workers
 * is 0..256, the user (if any) is valid, log_level <= debug.
 */
#include "cli.h"
#include "policy.h"

#include "fuzz.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

static void
check_endpoint(const struct endpoint *e)
{
	if (e->ss.ss_family == AF_INET)
		CHECK(e->len == sizeof(struct sockaddr_in));
	else
		CHECK(e->ss.ss_family == AF_INET6 &&
		      e->len == sizeof(struct sockaddr_in6));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct policy defaults, p;
	static bool primed;
	struct options o;
	char *argv[MAX_ARGS + 2];
	char err[256];
	char *buf;
	int argc = 1, rc;

	if (!primed) {
		policy_defaults(&defaults, NULL);
		primed = true;
	}
	/* A private copy with a terminating NUL, split in place. */
	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[0] = (char *)"echod";
	if (size > 0) {
		char *s = buf, *end = buf + size;
		while (argc <= MAX_ARGS) {
			argv[argc++] = s;
			s += strlen(s);
			if (s >= end)
				break;
			s++; /* past the NUL separator */
		}
	}
	argv[argc] = NULL;

	memset(err, 0, sizeof(err));
	rc = cli_parse(argc, argv, &o, err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (rc != 0) {
		CHECK(err[0] != '\0');
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		free(buf);
		return 0;
	}
	CHECK(o.nlisten <= POLICY_MAX_LISTEN);
	for (size_t i = 0; i < o.nlisten; i++)
		check_endpoint(&o.listen[i]);
	CHECK(o.workers <= 256);
	CHECK(!o.workers_set || o.workers <= 256);
	CHECK(!o.port_set || o.port != 0);
	CHECK(o.user == NULL || policy_valid_user(o.user));
	CHECK(o.verbose >= 0);

	memcpy(&p, &defaults, sizeof(p));
	cli_apply(&o, &p);
	CHECK(p.nlisten <= POLICY_MAX_LISTEN);
	if (o.nlisten > 0)
		CHECK(p.nlisten == o.nlisten);
	else
		CHECK(p.nlisten == defaults.nlisten);
	for (size_t i = 0; i < p.nlisten; i++) {
		const struct endpoint *e = &p.listen[i];
		check_endpoint(e);
		if (e->has_port)
			continue;
		CHECK(endpoint_port(e) == (o.port_set ? o.port : 7));
		CHECK(endpoint_port(e) != 0);
	}
	/* No two listen addresses may be one socket: the check says so
	 * exactly when two became equal once their ports were filled in. */
	{
		char msg[256] = "";
		bool same = false;
		for (size_t i = 0; i < p.nlisten; i++)
			for (size_t j = i + 1; j < p.nlisten; j++)
				same |= p.listen[i].len == p.listen[j].len &&
				        memcmp(&p.listen[i].ss, &p.listen[j].ss,
				               p.listen[i].len) == 0;
		CHECK((cli_check_listen(&p, msg, sizeof(msg)) != 0) == same);
		CHECK(!same || strstr(msg, "given twice") != NULL);
	}
	CHECK(p.log_level <= LOG_DEBUG);
	CHECK(p.workers <= 256);
	CHECK(memchr(p.user, '\0', sizeof(p.user)) != NULL);
	if (o.user != NULL)
		CHECK(strcmp(p.user, o.user) == 0);
	free(buf);
	return 0;
}
