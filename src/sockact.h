/*
 * sockact: systemd socket activation (LISTEN_PID, LISTEN_FDS).
 * Map: parser layer; calls errmsg, listener, units.
 */
#ifndef ECHOD_SOCKACT_H
#define ECHOD_SOCKACT_H

#include "listener.h"

#include <stddef.h>
#include <sys/types.h>

#define SOCKACT_FIRST_FD 3
#define SOCKACT_MAX_FDS  64

/*
 * Pure check of the two variables: 0 with *nfds = 0 when activation is not
 * in use (LISTEN_FDS unset), 0 with *nfds set when LISTEN_PID names `self`,
 * -1 with a reason otherwise (a wrong pid or a malformed count).
 */
int sockact_parse(const char *listen_pid, const char *listen_fds, pid_t self,
                  unsigned *nfds, char *err, size_t errlen);

/* How many sockets systemd passed: 0 if none, or if LISTEN_* is wrong
 * (sockact_take then refuses it, with the reason). */
unsigned sockact_passed(void);

/*
 * Take the passed fds into *out as sockets shared by every worker, after
 * checking each is an IPv4/IPv6 listening TCP socket or a bound UDP socket
 * (IPv6 ones with IPV6_V6ONLY). Unsets the variables. 0 if activation was
 * not used (out->n == 0), 1 if sockets were taken, -1 with a reason.
 */
int sockact_take(struct listen_set *out, char *err, size_t errlen);

#endif
