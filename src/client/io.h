/*
 * client/io: what every mode of echo-client shares below the network:
 * exit statuses, error exits, the clock and -t, poll() with a deadline
 * and ^C, stdin and stdout, and how a difference in the echo is told.
 * Calls only options.h (for -t) and libc.
 */
#ifndef ECHO_CLIENT_IO_H
#define ECHO_CLIENT_IO_H

#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define EXIT_MISMATCH 1
#define EXIT_NETWORK  2
#define EXIT_LOSS     3
#define EXIT_USAGE    64 /* EX_USAGE of sysexits(3) */

#define IO_CHUNK  65536 /* also holds any UDP datagram */
#define NS_PER_MS UINT64_C(1000000)

/* Receive buffer for every mode; big enough for any UDP datagram. */
extern unsigned char iobuf[IO_CHUNK];

/* "echo-client: " fmt [": " reason] on stderr. */
void vwarn(const char *fmt, va_list ap, const char *reason)
    __attribute__((format(printf, 1, 0)));
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* warnx(), then exit(status); fatal() adds strerror(errno). */
_Noreturn void fatalx(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
_Noreturn void fatal(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* calloc, or exit EXIT_NETWORK. */
void *xcalloc(size_t n, size_t size);

/* CLOCK_MONOTONIC in ns; -t in ns; -t as text ("2", "0.5"). */
uint64_t now_ns(void);
uint64_t timeout_ns(void);
const char *timeout_str(void);
/* v / 10^digits without trailing zeros: 2000,3 is "2", 500,3 "0.5". */
const char *format_decimal(uint64_t v, unsigned digits, char *buf, size_t len);
/* Exit EXIT_NETWORK: timed out after -t waiting for `what`. */
_Noreturn void timed_out(const char *what);

/* Reopen a closed 0, 1 or 2 on /dev/null, so no socket lands there. */
void keep_std_fds_open(void);
/* From now on ^C makes poll_until() return WAIT_INTERRUPTED. */
void catch_sigint(void);

enum wait_result { WAIT_READY, WAIT_TIMEOUT, WAIT_INTERRUPTED };

/* poll() until something is ready or the deadline (0: none) has passed. */
enum wait_result poll_until(struct pollfd *pfd, nfds_t nfd, uint64_t deadline);

/* Write all of p to stdout; one read() of stdin, 0 at end of file. */
void write_stdout(const unsigned char *p, size_t n);
size_t read_stdin(unsigned char *p, size_t n);

/* Index of the first byte where a and b differ, or n if they agree. */
size_t first_difference(const unsigned char *a, const unsigned char *b,
                        size_t n);
/* Warn where the echo `got` of `what` number `num` departs from `want`. */
void report_difference(const char *what, uint64_t num,
                       const unsigned char *want, size_t wlen,
                       const unsigned char *got, size_t glen, uint64_t base);

#endif
