/*
 * client/options: echo-client's command line, parsed once into `opts`,
 * the process-wide configuration every mode reads. Sits on units.h (the
 * daemon's value parsers) and io.h (error exits); calls nothing else.
 */
#ifndef ECHO_CLIENT_OPTIONS_H
#define ECHO_CLIENT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct client_opts {
	const char *host;
	char service[8]; /* the port as text, for getaddrinfo */
	unsigned port;
	int family;
	bool udp;
	uint64_t timeout_ms;
	uint64_t count; /* probes to send; 0 selects stream mode */
	size_t size;
	struct sockaddr_storage source; /* -b ADDR; source_len 0: none */
	socklen_t source_len;
	const char *source_text;
};

extern struct client_opts opts;

/* Fill opts from argv; exits 0 after -h, EXIT_USAGE on any bad flag. */
void parse_args(int argc, char **argv);

#endif
