/*
 * policy: the policy file's grammar and the settings it produces.
 * Map: parser layer; calls acl, addr, errmsg, log, units.
 */
#ifndef ECHOD_POLICY_H
#define ECHOD_POLICY_H

#include "acl.h"
#include "addr.h"
#include "log.h"
#include "units.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_MAX_LISTEN 16
#define POLICY_MAX_CIDRS  256
#define POLICY_MAX_LINE   1024
#define POLICY_NAME_MAX   64
#define POLICY_PATH_MAX   256
#define POLICY_MAX_XDP    8  /* interfaces of xdp-prefilter */
#define POLICY_IFNAME_MAX 16 /* IFNAMSIZ */
#define POLICY_MAX_LEVELS 4  /* prefix levels of tcp-prefix-v4, -v6 */
#define POLICY_MAX_FILE   (1024 * 1024)
#define POLICY_PRINT_MAX  (512 * 1024) /* policy_print's text, at most */

/* How xdp-prefilter attaches: auto tries native (driver) then generic. */
enum xdp_mode { XDP_MODE_AUTO, XDP_MODE_NATIVE, XDP_MODE_GENERIC };

struct policy {
	struct endpoint listen[POLICY_MAX_LISTEN];
	size_t nlisten;
	bool tcp, udp;
	unsigned workers; /* 0 means one per online CPU */
	char user[POLICY_NAME_MAX];
	unsigned tcp_max_connections;
	uint64_t tcp_idle_timeout_ms;
	uint64_t tcp_buffer;
	unsigned tcp_splice_pipes; /* per worker; 0: the copy path only */
	uint64_t udp_max_datagram;
	uint64_t udp_receive_buffer; /* SO_RCVBUF of every UDP socket */
	enum log_level log_level;
	bool log_syslog;                   /* log syslog: else stderr */
	char syslog_path[POLICY_PATH_MAX]; /* log syslog PATH, /dev/log */
	bool log_json;                     /* log-format json */
	bool metrics_on;                   /* metrics ADDR:PORT, not off */
	struct endpoint metrics;           /* where GET /metrics is served */
	struct acl metrics_allow;          /* metrics-allow: who may scrape */
	char chroot_dir[POLICY_PATH_MAX];
	bool sandbox_log;       /* sandbox-violation log: SECCOMP_RET_LOG */
	bool landlock_required; /* landlock required: refuse without it */
	bool allow_big_stderr;  /* allow-downgrade fsize-limit */
	bool allow_no_xdp;      /* allow-downgrade xdp-prefilter */
	struct bucket_cfg worker_restarts; /* per worker; past it, stop */

	/* xdp-prefilter: the interfaces (none: off) and how to attach. */
	char xdp_ifaces[POLICY_MAX_XDP][POLICY_IFNAME_MAX];
	size_t nxdp;
	enum xdp_mode xdp_mode;

	/* Abuse controls (docs/design.md says why each default). */
	bool enforce;   /* false: log-only, count and log but echo anyway */
	struct acl acl; /* allow / deny */
	struct acl rate_exempt; /* rate-exempt: sources the rate limits skip */
	struct portset udp_deny_ports;
	unsigned rate_prefix_v4, rate_prefix_v6;
	unsigned rate_table_size;
	bool loop_guard;
	unsigned loop_repeats;
	uint64_t loop_window_ms, loop_hold_ms;
	struct bucket_cfg udp_rate, udp_byte_rate, udp_global_rate;
	/* UDP per aggregate (a coarser prefix): echoes to one network. */
	unsigned udp_aggregate_prefix_v4, udp_aggregate_prefix_v6;
	struct bucket_cfg udp_aggregate_rate;
	/* TCP's prefix levels, finest (the per-source key) first, each
	 * shorter than the one before; the last is the aggregate. */
	unsigned tcp_prefix_v4[POLICY_MAX_LEVELS], tcp_levels_v4;
	unsigned tcp_prefix_v6[POLICY_MAX_LEVELS], tcp_levels_v6;
	unsigned tcp_max_per_source, tcp_max_per_aggregate;
	struct bucket_cfg tcp_connect_rate, tcp_byte_rate;
	struct bucket_cfg tcp_aggregate_connect_rate;
	/* embedded-ipv4 judge: sources in the IPv6 forms that embed an IPv4
	 * address (addr.h) are judged as that address; else (drop) they are
	 * bad sources. */
	bool embedded_ipv4_judge;
	struct bucket_cfg tcp_min_rate; /* bytes in per period; rate 0: off */
	uint64_t tcp_max_lifetime_ms;   /* 0: off */
	uint64_t tcp_max_bytes;         /* 0: off */
};

struct policy_error {
	unsigned line; /* 0: not tied to a line */
	char msg[192];
};

/*
 * Apply the directives in buf[0..len) on top of *p (which holds the values
 * in force so far, e.g. the built-in defaults). Lists named in buf replace
 * the lists in *p. Pure: no I/O, no allocation. 0, or -1 with *err set.
 */
int policy_parse(const char *buf, size_t len, struct policy *p,
                 struct policy_error *err);

/* Fill *p from the built-in default policy (the text of policy/echod.conf).
 * 0, or -1 (a broken build) with *err set unless err is NULL. */
int policy_defaults(struct policy *p, struct policy_error *err);

/* The built-in default policy text, NUL-terminated. */
extern const char policy_default_text[];

/* Read and parse a file on top of *p; errors carry the line number. */
int policy_load_file(const char *path, struct policy *p,
                     struct policy_error *err);

/* Read dir_fd/name (AT_FDCWD: a path) into buf[0..*len), at most cap - 1
 * bytes (a larger file is an error); 0, or -1 with err->msg set. */
int policy_read_at(int dir_fd, const char *name, char *buf, size_t cap,
                   size_t *len, struct policy_error *err);

/*
 * echod -T: every keyword with its value, defaults included, in the policy
 * file's syntax and the directives' order; policy_parse of the text over
 * the defaults gives a policy that prints the same. A list with no entry
 * is a comment. The length, or -1 if it does not fit in len
 * (POLICY_PRINT_MAX always does).
 */
int policy_print(const struct policy *p, char *buf, size_t len);

/* The keywords whose printed value differs between a and b, comma
 * separated in the directives' order: their count, or -1 (too long). */
int policy_changed_keywords(const struct policy *a, const struct policy *b,
                            char *buf, size_t len);

/* The CA-1996-01 ports (0, 7, 13, 17, 19, 37) that p's
 * udp-deny-source-ports no longer denies, comma separated: their count
 * (0: all denied, as the built-in list does), or -1 (too long). */
int policy_lost_defaults(const struct policy *p, char *buf, size_t len);

/* The index of ep in p->listen (same address, port and has_port), or
 * p->nlisten if it is not there. */
size_t policy_listen_index(const struct policy *p, const struct endpoint *ep);

/* A portable user name: letters, digits, '.', '_', '-', not leading '-'. */
bool policy_valid_user(const char *name);

/* "auto", "native" or "generic". */
const char *xdp_mode_name(enum xdp_mode m);

#endif
