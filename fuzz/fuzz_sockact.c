/*
 * fuzz_sockact: sockact_parse, the pure check of LISTEN_PID / LISTEN_FDS.
 *
 * Input: a flag byte, then "PID\0FDS" (the FDS part runs to the end; a
 * missing NUL leaves FDS empty). Flags: bit 0 LISTEN_PID unset (NULL),
 * bit 1 LISTEN_FDS unset, bit 2 "self" is our real pid (else it is the
 * next 4 bytes, so the fuzzer can match PID without knowing it).
 *
 * Invariants: success with nfds > 0 implies 1..SOCKACT_MAX_FDS, LISTEN_FDS
 * set, and LISTEN_PID a decimal number equal to self (never success for
 * another pid); LISTEN_FDS unset is always success with nfds == 0; every
 * error leaves a non-empty, NUL-terminated reason.
 */
#include "sockact.h"

#include "fuzz.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TEXT 255

/* Independent reading of a pid: digits only, 1..INT32_MAX. */
static bool
ref_pid(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
		if (v > INT32_MAX)
			return false;
	}
	*out = v;
	return v != 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[MAX_TEXT + 2], err[128];
	const char *pid_s, *fds_s;
	unsigned nfds = 12345;
	pid_t self;
	uint8_t flags;
	size_t n;
	int rc;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (flags & 4) {
		self = getpid();
	} else {
		uint32_t v = 0;
		if (size < 4)
			return 0;
		memcpy(&v, data, 4);
		self = (pid_t)(v & 0x7fffffff);
		data += 4;
		size -= 4;
	}
	n = size < MAX_TEXT ? size : MAX_TEXT;
	memcpy(text, data, n);
	text[n] = '\0';
	text[n + 1] = '\0';
	pid_s = text;
	fds_s = text + strlen(text) + 1; /* "" when there was no NUL */
	if (flags & 1)
		pid_s = NULL;
	if (flags & 2)
		fds_s = NULL;

	memset(err, 0, sizeof(err));
	rc = sockact_parse(pid_s, fds_s, self, &nfds, err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (fds_s == NULL) {
		CHECK(rc == 0 && nfds == 0);
		return 0;
	}
	if (rc != 0) {
		CHECK(err[0] != '\0');
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return 0;
	}
	/* Activation in use: only for this very process. */
	int64_t pid;
	CHECK(nfds >= 1 && nfds <= SOCKACT_MAX_FDS);
	CHECK(pid_s != NULL);
	CHECK(ref_pid(pid_s, &pid));
	CHECK(pid == (int64_t)self);
	/* The count is LISTEN_FDS read as a plain number. */
	CHECK((unsigned)strtoul(fds_s, NULL, 10) == nfds);
	for (const char *c = fds_s; *c; c++)
		CHECK(*c >= '0' && *c <= '9');
	return 0;
}
