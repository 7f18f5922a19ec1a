/* Unit tests for src/policy.c: the policy grammar and the built-in defaults. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "endpoint_asserts.h"

#include "policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parse `len` bytes of `buf` on top of the built-in defaults. */
static int
parse_len(const char *buf, size_t len, struct policy *p,
          struct policy_error *err)
{
	policy_defaults(p, NULL);
	memset(err, 0x5a, sizeof(*err));
	return policy_parse(buf, len, p, err);
}

/* A NUL-terminated text that must parse; returns the policy. */
static void
parse_ok(const char *text, struct policy *p)
{
	struct policy_error err;

	if (parse_len(text, strlen(text), p, &err) != 0)
		fail_msg("policy rejected at line %u: %s\n--- text:\n%s",
		         err.line, err.msg, text);
	assert_int_equal(err.line, 0);
}

/* A text that must fail at `line` with a message containing `needle`. */
static void
parse_fails(const char *buf, size_t len, unsigned line, const char *needle)
{
	struct policy p;
	struct policy_error err;

	if (parse_len(buf, len, &p, &err) != -1)
		fail_msg("policy accepted:\n%.*s", (int)len, buf);
	if (err.line != line)
		fail_msg("error at line %u, want %u (%s)", err.line, line,
		         err.msg);
	assert_non_null(memchr(err.msg, '\0', sizeof(err.msg)));
	if (strstr(err.msg, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void
text_fails(const char *text, unsigned line, const char *needle)
{
	parse_fails(text, strlen(text), line, needle);
}

/* The documented defaults of policy/echod.conf. */
static void
assert_defaults(const struct policy *p)
{
	assert_int_equal(p->nlisten, 2);
	assert_ep4(&p->listen[0], "0.0.0.0", 0, false);
	assert_ep6(&p->listen[1], "::", 0, false);
	assert_true(p->tcp);
	assert_true(p->udp);
	assert_int_equal(p->workers, 0);
	assert_string_equal(p->user, "");
	assert_int_equal(p->tcp_max_connections, 1024);
	assert_int_equal(p->tcp_idle_timeout_ms, 30000);
	assert_int_equal(p->tcp_buffer, 16384);
	assert_int_equal(p->tcp_splice_pipes, 0);
	assert_int_equal(p->udp_max_datagram, 65507);
	assert_int_equal(p->udp_receive_buffer, 4 * 1024 * 1024);
	assert_int_equal(p->log_level, LOG_INFO);
	assert_string_equal(p->chroot_dir, "/var/empty/echod");
	assert_false(p->sandbox_log);
	assert_false(p->allow_big_stderr);
}

/* ---- defaults ---- */

static void
test_defaults(void **state)
{
	struct policy p;

	(void)state;
	memset(&p, 0xa5, sizeof(p));
	policy_defaults(&p, NULL);
	assert_defaults(&p);
}

static void
test_default_text(void **state)
{
	struct policy p, q;
	struct policy_error err;

	(void)state;
	assert_non_null(strstr(policy_default_text, "\nlisten 0.0.0.0 ::\n"));
	assert_non_null(strstr(policy_default_text, "\nworkers auto\n"));
	memset(&q, 0, sizeof(q));
	assert_int_equal(policy_parse(policy_default_text,
	                              strlen(policy_default_text), &q, &err),
	                 0);
	assert_int_equal(err.line, 0);
	policy_defaults(&p, NULL);
	assert_memory_equal(&p, &q, sizeof(p));
	/* Re-applying the defaults on top of themselves changes nothing. */
	assert_int_equal(policy_parse(policy_default_text,
	                              strlen(policy_default_text), &q, &err),
	                 0);
	assert_memory_equal(&p, &q, sizeof(p));
}

/* When built from /work/main, the file on disk is the embedded text. */
static void
test_default_file_matches(void **state)
{
	struct policy p, q;
	struct policy_error err;

	(void)state;
	if (access("policy/echod.conf", R_OK) != 0)
		skip();
	policy_defaults(&p, NULL);
	memset(&q, 0, sizeof(q));
	assert_int_equal(policy_load_file("policy/echod.conf", &q, &err), 0);
	assert_memory_equal(&p, &q, sizeof(p));
}

/* ---- every keyword ---- */

static void
test_every_keyword(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("listen 127.0.0.1:7007 [::1]:8\n"
	         "protocols udp\n"
	         "workers 4\n"
	         "user echod\n"
	         "tcp-max-connections 100000\n"
	         "tcp-idle-timeout 5m\n"
	         "tcp-buffer 64k\n"
	         "udp-max-datagram 512\n"
	         "log-level debug\n"
	         "chroot /srv/echod-root\n"
	         "sandbox-violation log\n"
	         "allow-downgrade fsize-limit\n",
	         &p);
	assert_int_equal(p.nlisten, 2);
	assert_ep4(&p.listen[0], "127.0.0.1", 7007, true);
	assert_ep6(&p.listen[1], "::1", 8, true);
	assert_false(p.tcp);
	assert_true(p.udp);
	assert_int_equal(p.workers, 4);
	assert_string_equal(p.user, "echod");
	assert_int_equal(p.tcp_max_connections, 100000);
	assert_int_equal(p.tcp_idle_timeout_ms, 300000);
	assert_int_equal(p.tcp_buffer, 65536);
	assert_int_equal(p.udp_max_datagram, 512);
	assert_int_equal(p.log_level, LOG_DEBUG);
	assert_string_equal(p.chroot_dir, "/srv/echod-root");
	assert_true(p.sandbox_log);
	assert_true(p.allow_big_stderr);
}

static void
test_keyword_ranges(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("tcp-max-connections 1\n", &p);
	assert_int_equal(p.tcp_max_connections, 1);
	parse_ok("tcp-idle-timeout 100ms\n", &p);
	assert_int_equal(p.tcp_idle_timeout_ms, 100);
	parse_ok("tcp-idle-timeout 24h\n", &p);
	assert_int_equal(p.tcp_idle_timeout_ms, 86400000);
	parse_ok("tcp-idle-timeout 1440m\n", &p);
	assert_int_equal(p.tcp_idle_timeout_ms, 86400000);
	parse_ok("tcp-buffer 512\n", &p);
	assert_int_equal(p.tcp_buffer, 512);
	parse_ok("tcp-buffer 16m\n", &p);
	assert_int_equal(p.tcp_buffer, 16777216);
	parse_ok("tcp-splice-pipes 0\n", &p);
	assert_int_equal(p.tcp_splice_pipes, 0);
	parse_ok("tcp-splice-pipes 1024\n", &p);
	assert_int_equal(p.tcp_splice_pipes, 1024);
	parse_ok("udp-receive-buffer 64k\n", &p);
	assert_int_equal(p.udp_receive_buffer, 65536);
	parse_ok("udp-receive-buffer 256m\n", &p);
	assert_int_equal(p.udp_receive_buffer, 268435456);
	parse_ok("udp-max-datagram 0\n", &p);
	assert_int_equal(p.udp_max_datagram, 0);
	parse_ok("udp-max-datagram 65535\n", &p);
	assert_int_equal(p.udp_max_datagram, 65535);
	parse_ok("udp-max-datagram 63k\n", &p);
	assert_int_equal(p.udp_max_datagram, 64512);
	parse_ok("log-level error\n", &p);
	assert_int_equal(p.log_level, LOG_ERROR);
	parse_ok("log-level warn\n", &p);
	assert_int_equal(p.log_level, LOG_WARN);
	parse_ok("log-level info\n", &p);
	assert_int_equal(p.log_level, LOG_INFO);
	parse_ok("log-level debug\n", &p);
	assert_int_equal(p.log_level, LOG_DEBUG);
	parse_ok("sandbox-violation log\n", &p);
	assert_true(p.sandbox_log);
	parse_ok("sandbox-violation kill\n", &p);
	assert_false(p.sandbox_log);
	parse_ok("allow-downgrade fsize-limit\n", &p);
	assert_true(p.allow_big_stderr);
	parse_ok("allow-downgrade none\n", &p);
	assert_false(p.allow_big_stderr);
	parse_ok("chroot /var/empty/other/\n", &p);
	assert_string_equal(p.chroot_dir, "/var/empty/other/");
}

/* xdp-prefilter: off by default; interfaces, then an optional mode. */
static void
test_xdp_prefilter(void **state)
{
	struct policy p;

	(void)state;
	policy_defaults(&p, NULL);
	assert_int_equal(p.nxdp, 0);
	assert_false(p.allow_no_xdp);
	parse_ok("xdp-prefilter eth0\n", &p);
	assert_int_equal(p.nxdp, 1);
	assert_string_equal(p.xdp_ifaces[0], "eth0");
	assert_int_equal(p.xdp_mode, XDP_MODE_AUTO);
	parse_ok("xdp-prefilter eth0 veth-a.1 0123456789abcde mode generic\n",
	         &p);
	assert_int_equal(p.nxdp, 3);
	assert_string_equal(p.xdp_ifaces[2], "0123456789abcde");
	assert_int_equal(p.xdp_mode, XDP_MODE_GENERIC);
	parse_ok("xdp-prefilter a b c d e f g h mode native\n", &p);
	assert_int_equal(p.nxdp, POLICY_MAX_XDP);
	assert_int_equal(p.xdp_mode, XDP_MODE_NATIVE);
	assert_string_equal(xdp_mode_name(p.xdp_mode), "native");
	parse_ok("allow-downgrade xdp-prefilter\n", &p);
	assert_true(p.allow_no_xdp);
	assert_false(p.allow_big_stderr);
	parse_ok("allow-downgrade fsize-limit xdp-prefilter\n", &p);
	assert_true(p.allow_no_xdp);
	assert_true(p.allow_big_stderr);
	parse_ok("allow-downgrade none\n", &p);
	assert_false(p.allow_no_xdp);
}

/* chroot: absolute, not /, no "..", at most POLICY_PATH_MAX - 1 bytes. */
static void
test_chroot(void **state)
{
	char t[POLICY_PATH_MAX + 32];
	struct policy p;

	(void)state;
	parse_ok("chroot /a\n", &p);
	assert_string_equal(p.chroot_dir, "/a");
	parse_ok("chroot /var/empty/..echod\n", &p);
	assert_string_equal(p.chroot_dir, "/var/empty/..echod");

	memcpy(t, "chroot /", 8);
	memset(t + 8, 'd', POLICY_PATH_MAX - 2);
	strcpy(t + 8 + POLICY_PATH_MAX - 2, "\n");
	parse_ok(t, &p);
	assert_int_equal(strlen(p.chroot_dir), POLICY_PATH_MAX - 1);
	strcpy(t + 8 + POLICY_PATH_MAX - 2, "d\n");
	text_fails(t, 1, "'chroot'");

	text_fails("chroot /\n", 1, "'chroot'");
	text_fails("chroot var/empty\n", 1, "'chroot'");
	text_fails("chroot ./x\n", 1, "'chroot'");
	text_fails("chroot /var/../etc\n", 1, "'chroot'");
	text_fails("chroot\n", 1, "'chroot'");
	text_fails("chroot /a /b\n", 1, "'chroot'");
}

/*
 * Paths that name / (or climb out of the directory) in ways other than
 * "/" and "/../" must be refused too.
 */
static void
test_chroot_dotdot_at_end(void **state)
{
	(void)state;
	text_fails("chroot /..\n", 1, "'chroot'");
	text_fails("chroot /var/empty/..\n", 1, "'chroot'");
	text_fails("chroot //\n", 1, "'chroot'");
}

/* A file that does not name a keyword leaves its default in place. */
static void
test_unnamed_keep_defaults(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("workers 2\n", &p);
	assert_int_equal(p.workers, 2);
	p.workers = 0;
	assert_defaults(&p);
}

/* ---- lists ---- */

static void
test_listen_replaces_and_adds(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("listen 127.0.0.1:7007\n", &p);
	assert_int_equal(p.nlisten, 1);
	assert_ep4(&p.listen[0], "127.0.0.1", 7007, true);

	parse_ok("listen 127.0.0.1\n"
	         "workers 1\n"
	         "listen [::1]:8 10.0.0.1:9\n"
	         "listen ::ffff:192.0.2.1\n",
	         &p);
	assert_int_equal(p.nlisten, 4);
	assert_ep4(&p.listen[0], "127.0.0.1", 0, false);
	assert_ep6(&p.listen[1], "::1", 8, true);
	assert_ep4(&p.listen[2], "10.0.0.1", 9, true);
	assert_ep4(&p.listen[3], "192.0.2.1", 0, false);

	/* The same address twice would bind twice: an error. Port 0 would
	 * give each worker's socket a different port: an error. */
	text_fails("listen 127.0.0.1:1\nlisten 127.0.0.1:1\n", 2,
	           "listed twice");
	text_fails("listen 127.0.0.1:0\n", 1, "1 to 65535");
}

/* A second file applied on top replaces the first file's list too. */
static void
test_listen_replaced_per_parse(void **state)
{
	struct policy p;
	struct policy_error err;
	const char *a = "listen 1.1.1.1:1 2.2.2.2:2\n";
	const char *b = "listen 3.3.3.3:3\n";

	(void)state;
	policy_defaults(&p, NULL);
	assert_int_equal(policy_parse(a, strlen(a), &p, &err), 0);
	assert_int_equal(p.nlisten, 2);
	assert_int_equal(policy_parse(b, strlen(b), &p, &err), 0);
	assert_int_equal(p.nlisten, 1);
	assert_ep4(&p.listen[0], "3.3.3.3", 3, true);
}

static void
test_listen_limit(void **state)
{
	char text[1024];
	struct policy p;
	size_t n = 0;

	(void)state;
	/* 16 on one line: fine. */
	n = (size_t)snprintf(text, sizeof(text), "listen");
	for (int i = 1; i <= 16; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		                      " 10.0.0.%d:7", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	parse_ok(text, &p);
	assert_int_equal(p.nlisten, 16);
	assert_ep4(&p.listen[15], "10.0.0.16", 7, true);

	/* 17 on one line. */
	snprintf(text + n, sizeof(text) - n, " 10.0.0.17:7\n");
	text_fails(text, 1, "'listen'");

	/* 16 then one more on a later line. */
	snprintf(text + n, sizeof(text) - n, "\n# more\nlisten ::1\n");
	text_fails(text, 3, "'listen'");
}

/* ---- repeats ---- */

static void
test_identical_repeat(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("workers 4\nworkers 4\n", &p);
	assert_int_equal(p.workers, 4);
	/* Spacing and comments do not make it different. */
	parse_ok("protocols tcp udp\nprotocols\ttcp   udp  # again\n", &p);
	assert_true(p.tcp && p.udp);
	parse_ok("tcp-idle-timeout 5s\ntcp-idle-timeout 5s\r\n", &p);
	assert_int_equal(p.tcp_idle_timeout_ms, 5000);
	parse_ok("user echod\n\nuser echod\nuser echod\n", &p);
	assert_string_equal(p.user, "echod");
}

static void
test_conflicting_repeat(void **state)
{
	struct policy p;
	struct policy_error err;
	const char *t = "workers 4\n# comment\n\nworkers 5\n";

	(void)state;
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_int_equal(err.line, 4);
	assert_string_equal(err.msg,
	                    "'workers' conflicts with line 1 ('workers 4')");

	t = "log-level warn\nuser a\nlog-level debug\n";
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_int_equal(err.line, 3);
	assert_string_equal(
	    err.msg, "'log-level' conflicts with line 1 ('log-level warn')");

	/* The same value written differently still conflicts. */
	text_fails("tcp-idle-timeout 30s\ntcp-idle-timeout 30000ms\n", 2,
	           "line 1");
	text_fails("protocols tcp udp\nprotocols udp tcp\n", 2, "'protocols'");
	text_fails("user a\nuser b\n", 2, "conflicts with line 1");
	/* The built-in value does not count as an earlier line. */
	parse_ok("workers 7\n", &p);
	assert_int_equal(p.workers, 7);
}

/* ---- syntax errors ---- */

static void
test_unknown_keyword(void **state)
{
	struct policy p;
	struct policy_error err;
	const char *t = "# a comment\n\nfrobnicate 1\n";

	(void)state;
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_int_equal(err.line, 3);
	assert_string_equal(err.msg, "unknown keyword 'frobnicate'");

	text_fails("workers 2\nWorkers 2\n", 2, "'Workers'");
	text_fails("tcp_buffer 16k\n", 1, "'tcp_buffer'");
	text_fails("  listen-addr ::1\n", 1, "unknown keyword");
	/* A keyword is a whole word. */
	text_fails("workers2\n", 1, "'workers2'");
}

static void
bad_value(const char *line_text, const char *keyword)
{
	char text[2048];
	char quoted[64];

	/* The bad line comes third, after a comment and a valid line. */
	snprintf(text, sizeof(text), "# test\nlog-level info\n%s\n", line_text);
	snprintf(quoted, sizeof(quoted), "'%s'", keyword);
	text_fails(text, 3, quoted);
}

static void
test_bad_values(void **state)
{
	char name[80];

	(void)state;
	bad_value("listen", "listen");
	bad_value("listen localhost", "listen");
	bad_value("listen 1.2.3.4:70000", "listen");
	bad_value("listen 1.2.3.4:", "listen");
	bad_value("listen [::1", "listen");
	bad_value("listen 127.0.0.1 nonsense", "listen");

	bad_value("protocols", "protocols");
	bad_value("protocols sctp", "protocols");
	bad_value("protocols TCP", "protocols");
	bad_value("protocols tcp udp tcp", "protocols");

	bad_value("workers", "workers");
	bad_value("workers 0", "workers");
	bad_value("workers 257", "workers");
	bad_value("workers -1", "workers");
	bad_value("workers two", "workers");
	bad_value("workers 4 5", "workers");
	bad_value("workers AUTO", "workers");
	bad_value("workers auto 4", "workers");
	bad_value("workers 99999999999999999999", "workers");

	bad_value("user", "user");
	bad_value("user -root", "user");
	bad_value("user a/b", "user");
	bad_value("user a:b", "user");
	bad_value("user $(id)", "user");
	bad_value("user a b", "user");
	memset(name, 'a', 64);
	memcpy(name, "user ", 5);
	name[5 + 64] = '\0';
	memset(name + 5, 'u', 64);
	bad_value(name, "user");

	bad_value("tcp-max-connections", "tcp-max-connections");
	bad_value("tcp-max-connections 0", "tcp-max-connections");
	bad_value("tcp-max-connections 100001", "tcp-max-connections");
	bad_value("tcp-max-connections 1k", "tcp-max-connections");
	bad_value("tcp-max-connections -5", "tcp-max-connections");
	bad_value("tcp-max-connections 4294967296", "tcp-max-connections");
	bad_value("tcp-max-connections 1 2", "tcp-max-connections");

	bad_value("tcp-idle-timeout", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 30", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 99ms", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 0s", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 25h", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 1441m", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 86400001ms", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 1.5s", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 30S", "tcp-idle-timeout");
	bad_value("tcp-idle-timeout 30s 1m", "tcp-idle-timeout");

	bad_value("tcp-buffer", "tcp-buffer");
	bad_value("tcp-buffer 0", "tcp-buffer");
	bad_value("tcp-buffer 511", "tcp-buffer");
	bad_value("tcp-buffer 16385k", "tcp-buffer");
	bad_value("tcp-buffer 17m", "tcp-buffer");
	bad_value("tcp-buffer 1g", "tcp-buffer");
	bad_value("tcp-buffer 64K", "tcp-buffer");
	bad_value("tcp-buffer 1.5k", "tcp-buffer");
	bad_value("tcp-buffer 16k 16k", "tcp-buffer");

	bad_value("tcp-splice-pipes", "tcp-splice-pipes");
	bad_value("tcp-splice-pipes 1025", "tcp-splice-pipes");
	bad_value("tcp-splice-pipes -1", "tcp-splice-pipes");
	bad_value("tcp-splice-pipes 16k", "tcp-splice-pipes");
	bad_value("tcp-splice-pipes 16 16", "tcp-splice-pipes");

	bad_value("udp-receive-buffer", "udp-receive-buffer");
	bad_value("udp-receive-buffer 65535", "udp-receive-buffer");
	bad_value("udp-receive-buffer 257m", "udp-receive-buffer");
	bad_value("udp-receive-buffer 4m 4m", "udp-receive-buffer");
	bad_value("udp-receive-buffer lots", "udp-receive-buffer");

	bad_value("udp-max-datagram", "udp-max-datagram");
	bad_value("udp-max-datagram 65536", "udp-max-datagram");
	bad_value("udp-max-datagram 64k", "udp-max-datagram");
	bad_value("udp-max-datagram 1m", "udp-max-datagram");
	bad_value("udp-max-datagram -1", "udp-max-datagram");
	bad_value("udp-max-datagram 1x", "udp-max-datagram");

	bad_value("log-level", "log-level");
	bad_value("log-level verbose", "log-level");
	bad_value("log-level INFO", "log-level");
	bad_value("log-level warning", "log-level");
	bad_value("log-level info debug", "log-level");

	bad_value("chroot", "chroot");
	bad_value("chroot /", "chroot");
	bad_value("chroot relative/dir", "chroot");
	bad_value("chroot /a/../b", "chroot");
	bad_value("chroot /a /b", "chroot");

	bad_value("sandbox-violation", "sandbox-violation");
	bad_value("sandbox-violation trap", "sandbox-violation");
	bad_value("sandbox-violation KILL", "sandbox-violation");
	bad_value("sandbox-violation kill log", "sandbox-violation");

	bad_value("allow-downgrade", "allow-downgrade");
	bad_value("allow-downgrade all", "allow-downgrade");
	bad_value("allow-downgrade fsize", "allow-downgrade");
	bad_value("allow-downgrade none fsize-limit", "allow-downgrade");
	bad_value("allow-downgrade xdp-prefilter none", "allow-downgrade");
	bad_value("allow-downgrade fsize-limit fsize-limit", "allow-downgrade");
	bad_value("allow-downgrade a b c", "allow-downgrade");
	bad_value("xdp-prefilter", "xdp-prefilter");
	bad_value("xdp-prefilter mode native", "xdp-prefilter");
	bad_value("xdp-prefilter eth0 mode", "xdp-prefilter");
	bad_value("xdp-prefilter eth0 mode fast", "xdp-prefilter");
	bad_value("xdp-prefilter eth0 eth0", "xdp-prefilter");
	bad_value("xdp-prefilter eth0 mode native mode generic",
	          "xdp-prefilter");
	bad_value("xdp-prefilter 0123456789abcdef", "xdp-prefilter");
	bad_value("xdp-prefilter ../eth0", "xdp-prefilter");
	bad_value("xdp-prefilter eth0:1", "xdp-prefilter");
	bad_value("xdp-prefilter ..", "xdp-prefilter");
	bad_value("xdp-prefilter a b c d e f g h i", "xdp-prefilter");
}

static void
test_bad_value_messages(void **state)
{
	struct policy p;
	struct policy_error err;
	const char *t;

	(void)state;
	t = "workers 0\n";
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_int_equal(err.line, 1);
	assert_string_equal(err.msg, "'workers': expected auto or 1 to 256");

	t = "tcp-idle-timeout 99ms\n";
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_string_equal(
	    err.msg, "'tcp-idle-timeout': 99ms is out of range (100ms to "
	             "86400000ms)");

	t = "tcp-buffer 511\n";
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_string_equal(err.msg, "'tcp-buffer': 511 is out of range (512 "
	                             "to 16777216 bytes)");

	t = "listen\n";
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_string_equal(err.msg, "'listen' needs a value");

	t = "user a b\n";
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_string_equal(err.msg, "'user' takes 1 value, got 2");

	t = "protocols tcp tcp\n";
	assert_int_equal(parse_len(t, strlen(t), &p, &err), -1);
	assert_string_equal(err.msg, "'protocols': 'tcp' named twice");
}

/* ---- lexical ---- */

static void
test_comments(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("# only a comment\n"
	         "   # indented comment\n"
	         "workers 3 # three workers\n"
	         "user echod# no space before the comment\n"
	         "log-level warn\t#\ttab\n"
	         "tcp-buffer 1k #\n"
	         "#listen 1.2.3.4\n",
	         &p);
	assert_int_equal(p.workers, 3);
	assert_string_equal(p.user, "echod");
	assert_int_equal(p.log_level, LOG_WARN);
	assert_int_equal(p.tcp_buffer, 1024);
	/* The commented-out listen did not replace the defaults. */
	assert_int_equal(p.nlisten, 2);
	/* '#' ends the list of values too. */
	parse_ok("listen 127.0.0.1:1 #127.0.0.2:2\n", &p);
	assert_int_equal(p.nlisten, 1);
}

static void
test_whitespace(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("\t  workers\t\t5   \n", &p);
	assert_int_equal(p.workers, 5);
	parse_ok("listen\t127.0.0.1:1\t  [::1]:2\t\n", &p);
	assert_int_equal(p.nlisten, 2);
	assert_ep6(&p.listen[1], "::1", 2, true);
}

static void
test_crlf(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("# comment\r\n"
	         "\r\n"
	         "workers 6\r\n"
	         "user echod\r\n"
	         "listen 127.0.0.1:9 ::1\r\n"
	         "log-level error\r\n",
	         &p);
	assert_int_equal(p.workers, 6);
	assert_string_equal(p.user, "echod");
	assert_int_equal(p.nlisten, 2);
	assert_ep4(&p.listen[0], "127.0.0.1", 9, true);
	assert_ep6(&p.listen[1], "::1", 0, false);
	assert_int_equal(p.log_level, LOG_ERROR);
	/* Line numbers still count CRLF lines. */
	text_fails("# a\r\n\r\nbogus\r\n", 3, "'bogus'");
}

static void
test_no_final_newline(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("workers 8", &p);
	assert_int_equal(p.workers, 8);
	parse_ok("workers 8\nuser x", &p);
	assert_string_equal(p.user, "x");
	text_fails("workers 8\nbogus", 2, "'bogus'");
}

/* Only len bytes are read; what follows in memory is ignored. */
static void
test_len_is_honoured(void **state)
{
	struct policy p;
	struct policy_error err;
	const char *t = "workers 4\nbogus\n";

	(void)state;
	assert_int_equal(parse_len(t, 10, &p, &err), 0);
	assert_int_equal(p.workers, 4);
	assert_int_equal(parse_len(t, 9, &p, &err), 0);
	assert_int_equal(p.workers, 4);
	assert_int_equal(parse_len(t, 8, &p, &err), -1);
	assert_int_equal(err.line, 1);
	assert_int_equal(parse_len(t, 0, &p, &err), 0);
}

static void
test_empty(void **state)
{
	struct policy p, d;
	struct policy_error err;

	(void)state;
	policy_defaults(&d, NULL);
	assert_int_equal(parse_len("", 0, &p, &err), 0);
	assert_int_equal(err.line, 0);
	assert_memory_equal(&p, &d, sizeof(p));
	assert_int_equal(parse_len(NULL, 0, &p, &err), 0);
	assert_memory_equal(&p, &d, sizeof(p));
	parse_ok("\n\n\n", &p);
	assert_memory_equal(&p, &d, sizeof(p));
	parse_ok("# nothing\n   \n\t\n\r\n", &p);
	assert_memory_equal(&p, &d, sizeof(p));
}

static void
test_nul_byte(void **state)
{
	static const char t1[] = "workers 4\nuser a\0b\nlog-level info\n";
	static const char t2[] = "\0";
	static const char t3[] = "# ok\n#\0 in a comment\n";

	(void)state;
	parse_fails(t1, sizeof(t1) - 1, 2, "NUL");
	parse_fails(t2, 1, 1, "NUL");
	parse_fails(t3, sizeof(t3) - 1, 2, "NUL");
}

static void
test_long_line(void **state)
{
	static char t[3000];
	struct policy p;

	(void)state;
	/* 1024 bytes of content is the limit. */
	t[0] = '#';
	memset(t + 1, 'x', 1023);
	strcpy(t + 1024, "\nworkers 2\n");
	parse_ok(t, &p);
	assert_int_equal(p.workers, 2);

	/* A directive padded to exactly 1024 bytes. */
	memset(t, ' ', 1024);
	memcpy(t, "workers 9", 9);
	strcpy(t + 1024, "\n");
	parse_ok(t, &p);
	assert_int_equal(p.workers, 9);

	/* 1025 bytes on line 2. */
	strcpy(t, "workers 2\n#");
	memset(t + 11, 'x', 1024);
	strcpy(t + 11 + 1024, "\n");
	text_fails(t, 2, "longer than 1024");

	/* Same, without a final newline. */
	t[11 + 1024] = '\0';
	text_fails(t, 2, "longer than 1024");

	/* A long line is an error even in a comment far past the limit. */
	memset(t, '#', 2999);
	t[2999] = '\0';
	text_fails(t, 1, "longer than 1024");
}

static void
test_control_chars(void **state)
{
	struct policy p;

	(void)state;
	text_fails("workers 4\x01\n", 1, "control character 0x01");
	text_fails("workers 4\nuser a\x1b[31m\n", 2, "control character 0x1b");
	text_fails("# comment with DEL \x7f\n", 1, "control character 0x7f");
	text_fails("workers\v4\n", 1, "control character 0x0b");
	text_fails("workers\f4\n", 1, "control character 0x0c");
	text_fails("# a\n# b\n\x04\n", 3, "control character");
	/* Tab and CR are whitespace, not control characters. */
	parse_ok("workers\t4\r\n", &p);
	assert_int_equal(p.workers, 4);
	/* Bytes >= 0x80 (UTF-8) are fine in comments. */
	parse_ok("# caf\xc3\xa9\nworkers 4\n", &p);
	assert_int_equal(p.workers, 4);
}

static void
test_too_many_words(void **state)
{
	static char t[1100];
	size_t n;

	(void)state;
	n = (size_t)snprintf(t, sizeof(t), "listen");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(t + n, sizeof(t) - n, " x");
	snprintf(t + n, sizeof(t) - n, "\n");
	text_fails(t, 1, "too many words");
}

/* ---- protocols, workers, user ---- */

static void
test_protocols(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("protocols tcp\n", &p);
	assert_true(p.tcp);
	assert_false(p.udp);
	parse_ok("protocols udp\n", &p);
	assert_false(p.tcp);
	assert_true(p.udp);
	parse_ok("protocols udp tcp\n", &p);
	assert_true(p.tcp);
	assert_true(p.udp);
	text_fails("protocols tcp tcp\n", 1, "'protocols'");
	text_fails("protocols udp udp\n", 1, "named twice");
	text_fails("\nprotocols\n", 2, "'protocols'");
}

static void
test_workers(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("workers auto\n", &p);
	assert_int_equal(p.workers, 0);
	parse_ok("workers 1\n", &p);
	assert_int_equal(p.workers, 1);
	parse_ok("workers 256\n", &p);
	assert_int_equal(p.workers, 256);
	text_fails("workers 0\n", 1, "'workers'");
	text_fails("workers 257\n", 1, "'workers'");
}

static void
test_valid_user(void **state)
{
	char name[POLICY_NAME_MAX + 1];

	(void)state;
	assert_true(policy_valid_user("echod"));
	assert_true(policy_valid_user("nobody"));
	assert_true(policy_valid_user("a"));
	assert_true(policy_valid_user("A1"));
	assert_true(policy_valid_user("_echod"));
	assert_true(policy_valid_user("echo-d"));
	assert_true(policy_valid_user("echo.d"));
	assert_true(policy_valid_user("echo_d"));
	assert_true(policy_valid_user("0"));
	assert_true(policy_valid_user("user-"));

	assert_false(policy_valid_user(""));
	assert_false(policy_valid_user("-echod"));
	assert_false(policy_valid_user("-"));
	assert_false(policy_valid_user("echo d"));
	assert_false(policy_valid_user("echo/d"));
	assert_false(policy_valid_user("../etc"));
	assert_false(policy_valid_user("a:b"));
	assert_false(policy_valid_user("a;b"));
	assert_false(policy_valid_user("a$b"));
	assert_false(policy_valid_user("a*"));
	assert_false(policy_valid_user("a\tb"));
	assert_false(policy_valid_user("a\nb"));
	assert_false(policy_valid_user("caf\xc3\xa9"));
	assert_false(policy_valid_user("a@b"));

	/* At most POLICY_NAME_MAX - 1 characters. */
	memset(name, 'u', POLICY_NAME_MAX - 1);
	name[POLICY_NAME_MAX - 1] = '\0';
	assert_true(policy_valid_user(name));
	name[POLICY_NAME_MAX - 1] = 'u';
	name[POLICY_NAME_MAX] = '\0';
	assert_false(policy_valid_user(name));
}

static void
test_user_longest(void **state)
{
	char t[128];
	struct policy p;

	(void)state;
	memcpy(t, "user ", 5);
	memset(t + 5, 'u', POLICY_NAME_MAX - 1);
	strcpy(t + 5 + POLICY_NAME_MAX - 1, "\n");
	parse_ok(t, &p);
	assert_int_equal(strlen(p.user), POLICY_NAME_MAX - 1);
	assert_int_equal(memcmp(p.user, t + 5, POLICY_NAME_MAX - 1), 0);
}

static void
test_log_level_name(void **state)
{
	(void)state;
	assert_string_equal(log_level_name(LOG_ERROR), "error");
	assert_string_equal(log_level_name(LOG_WARN), "warn");
	assert_string_equal(log_level_name(LOG_INFO), "info");
	assert_string_equal(log_level_name(LOG_DEBUG), "debug");
}

/* ---- policy_load_file ---- */

static void
write_file(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
test_load_file(void **state)
{
	char path[] = "/tmp/echod-test-policy-XXXXXX";
	struct policy p;
	struct policy_error err;
	const char *t;
	char *big;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);

	t = "workers 3\nlisten 127.0.0.1:7\n";
	write_file(path, t, strlen(t));
	policy_defaults(&p, NULL);
	assert_int_equal(policy_load_file(path, &p, &err), 0);
	assert_int_equal(p.workers, 3);
	assert_int_equal(p.nlisten, 1);
	assert_int_equal(err.line, 0);

	t = "workers 3\n\nbogus\n";
	write_file(path, t, strlen(t));
	policy_defaults(&p, NULL);
	assert_int_equal(policy_load_file(path, &p, &err), -1);
	assert_int_equal(err.line, 3);
	assert_string_equal(err.msg, "unknown keyword 'bogus'");

	/* 1 MiB or more is refused. */
	big = malloc(1024 * 1024);
	assert_non_null(big);
	memset(big, '\n', 1024 * 1024);
	write_file(path, big, 1024 * 1024);
	free(big);
	policy_defaults(&p, NULL);
	assert_int_equal(policy_load_file(path, &p, &err), -1);
	assert_int_equal(err.line, 0);
	assert_non_null(strstr(err.msg, "larger than"));

	assert_int_equal(unlink(path), 0);
	assert_int_equal(policy_load_file(path, &p, &err), -1);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "cannot open: No such file or directory");

	assert_int_equal(policy_load_file("/", &p, &err), -1);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "not a regular file");
}

/* ---- abuse-control keywords ---- */

static void
test_abuse_keywords(void **state)
{
	struct policy p;
	struct ipaddr a;

	(void)state;
	parse_ok("enforce log-only\n"
	         "deny 198.18.0.0/15\n"
	         "allow 198.18.7.0/24 2001:db8::/32\n"
	         "udp-deny-source-ports 7 19-20\n"
	         "rate-prefix-v4 16\n"
	         "rate-prefix-v6 48\n"
	         "rate-table-size 64\n"
	         "udp-loop-guard on repeats 3 window 500ms hold 2m\n"
	         "udp-rate 6000/m burst 7\n"
	         "udp-byte-rate 64k/s burst 1m\n"
	         "udp-global-rate unlimited\n"
	         "tcp-max-connections-per-source 9\n"
	         "tcp-connect-rate 5/s\n"
	         "tcp-byte-rate 1m/m\n"
	         "tcp-max-lifetime off\n"
	         "tcp-max-bytes 10m\n",
	         &p);
	assert_false(p.enforce);
	assert_int_equal(parse_ipaddr("198.19.1.1", &a), 0);
	assert_false(acl_allows(&p.acl, &a));
	assert_int_equal(parse_ipaddr("198.18.7.1", &a), 0);
	assert_true(acl_allows(&p.acl, &a));
	/* A file's port list replaces the built-in one. */
	assert_true(portset_has(&p.udp_deny_ports, 7));
	assert_true(portset_has(&p.udp_deny_ports, 20));
	assert_false(portset_has(&p.udp_deny_ports, 53));
	assert_false(portset_has(&p.udp_deny_ports, 1900));
	assert_int_equal(p.rate_prefix_v4, 16);
	assert_int_equal(p.rate_prefix_v6, 48);
	assert_int_equal(p.rate_table_size, 64);
	assert_true(p.loop_guard);
	assert_int_equal(p.loop_repeats, 3);
	assert_int_equal(p.loop_window_ms, 500);
	assert_int_equal(p.loop_hold_ms, 120000);
	assert_int_equal(p.udp_rate.rate, 6000);
	assert_int_equal(p.udp_rate.period_ms, 60000);
	assert_int_equal(p.udp_rate.burst, 7);
	assert_int_equal(p.udp_byte_rate.rate, 65536);
	assert_int_equal(p.udp_byte_rate.burst, 1048576);
	assert_int_equal(p.udp_global_rate.rate, 0);
	assert_int_equal(p.tcp_max_per_source, 9);
	assert_int_equal(p.tcp_connect_rate.rate, 5);
	assert_int_equal(p.tcp_connect_rate.burst, 5); /* burst = rate */
	assert_int_equal(p.tcp_byte_rate.period_ms, 60000);
	assert_int_equal(p.tcp_max_lifetime_ms, 0);
	assert_int_equal(p.tcp_max_bytes, 10 * 1024 * 1024);
}

static void
test_abuse_keyword_errors(void **state)
{
	(void)state;
	text_fails("enforce maybe\n", 1, "enforce");
	text_fails("deny 198.18.0.1/15\n", 1, "host bits");
	text_fails("deny 198.18.0.0/15\nallow 198.18.0.0/15\n", 2,
	           "other verdict");
	text_fails("udp-deny-source-ports 10-5\n", 1, "udp-deny-source-ports");
	text_fails("rate-prefix-v4 33\n", 1, "rate-prefix-v4");
	text_fails("rate-table-size 10\n", 1, "rate-table-size");
	text_fails("udp-loop-guard on repeats 1\n", 1, "repeats");
	text_fails("udp-loop-guard on window\n", 1, "needs a value");
	text_fails("udp-rate 0/s\n", 1, "udp-rate");
	text_fails("udp-rate 10/s burst\n", 1, "burst");
	text_fails("udp-rate 10/s burst 0\n", 1, "burst");
	text_fails("udp-rate 10/ms\n", 1, "udp-rate");
	text_fails("udp-byte-rate 10/s burst 1x\n", 1, "burst");
	/* Found by fuzz_policy: an implicit burst must fit like an explicit
	 * one (fuzz/crashes/fuzz_policy/). */
	text_fails("udp-rate 4294967296/s\n", 1, "more than");
	text_fails("tcp-max-lifetime 0s\n", 1, "tcp-max-lifetime");
	text_fails("tcp-max-bytes 0\n", 1, "tcp-max-bytes");
}

/* A repeat that differs only after 160 characters is still a conflict. */
static void
test_long_conflicting_repeat(void **state)
{
	char text[600], dir[200];

	(void)state;
	memset(dir, 'a', sizeof(dir));
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	snprintf(text, sizeof(text), "chroot %sX\nchroot %sY\n", dir, dir);
	text_fails(text, 2, "conflicts with line 1");
}

static bool
exempt(const struct policy *p, const char *addr)
{
	struct ipaddr a;

	assert_int_equal(parse_ipaddr(addr, &a), 0);
	return acl_match(&p->rate_exempt, &a) != NULL;
}

/* rate-exempt: IPv4 and IPv6 prefixes, repeatable (later lines add), none
 * by default, and a file's list replaces an earlier one. */
static void
test_rate_exempt(void **state)
{
	struct policy p;

	(void)state;
	parse_ok("", &p);
	assert_int_equal(p.rate_exempt.n, 0);
	parse_ok("rate-exempt 198.18.0.2 2001:db8:1::/48\n"
	         "rate-exempt 198.18.4.0/24 ::ffff:198.18.8.0/120\n"
	         "rate-exempt 198.18.0.2\n", /* a repeat is harmless */
	         &p);
	assert_int_equal(p.rate_exempt.n, 4);
	assert_true(exempt(&p, "198.18.0.2"));
	assert_false(exempt(&p, "198.18.0.3"));
	assert_true(exempt(&p, "198.18.4.255"));
	assert_true(exempt(&p, "198.18.8.9")); /* the mapped /120 is a /24 */
	assert_true(exempt(&p, "::ffff:198.18.0.2"));
	assert_true(exempt(&p, "2001:db8:1:ffff::1"));
	assert_false(exempt(&p, "2001:db8:2::1"));
	/* Neither list leaks into the other. */
	assert_int_equal(p.acl.n, 0);
	parse_ok("deny 198.18.0.0/15\nrate-exempt 198.18.0.0/15\n", &p);
	assert_int_equal(p.acl.n, 1);
	assert_int_equal(p.rate_exempt.n, 1);
	/* Another file's list replaces this one. */
	struct policy_error err;
	const char *second = "rate-exempt 2001:db8::1\n";
	assert_int_equal(policy_parse(second, strlen(second), &p, &err), 0);
	assert_int_equal(p.rate_exempt.n, 1);
	assert_false(exempt(&p, "198.18.0.2"));
	assert_true(exempt(&p, "2001:db8::1"));
}

static void
test_rate_exempt_errors(void **state)
{
	static char many[(ACL_MAX + 1) * 32];
	size_t used = 0;

	(void)state;
	text_fails("rate-exempt\n", 1, "'rate-exempt' needs a value");
	text_fails("\nrate-exempt 198.18.0.1/24\n", 2, "host bits");
	text_fails("rate-exempt 198.18.0.0/33\n", 1, "'rate-exempt'");
	text_fails("rate-exempt 2001:db8::/129\n", 1, "'rate-exempt'");
	text_fails("rate-exempt 2001:db8::1/64\n", 1, "host bits");
	text_fails("rate-exempt example.org\n", 1, "is not ADDR");
	text_fails("rate-exempt 198.18.0.2\nrate-exempt 198.18.0.x\n", 2,
	           "'198.18.0.x'");
	/* One prefix a line, one more than the list holds. */
	for (int i = 0; i <= ACL_MAX; i++)
		used += (size_t)snprintf(many + used, sizeof(many) - used,
		                         "rate-exempt 10.%d.%d.0/24\n", i / 256,
		                         i % 256);
	text_fails(many, ACL_MAX + 1, "more than 512 prefixes");
}

/* -T: text that parses back to a policy that prints the same. */
static void
assert_round_trip(const char *text)
{
	static char one[POLICY_PRINT_MAX], two[POLICY_PRINT_MAX];
	static struct policy p, q;
	int n;

	parse_ok(text, &p);
	n = policy_print(&p, one, sizeof(one));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(one));
	parse_ok(one, &q);
	assert_int_equal(policy_print(&q, two, sizeof(two)), n);
	assert_string_equal(one, two);
}

static void
test_print_round_trips(void **state)
{
	(void)state;
	assert_round_trip("");
	assert_round_trip(
	    "listen 127.0.0.1:7007 [::1]:7008 10.1.2.3\nworkers 7\n"
	    "user daemon\nallow 198.51.100.7 2001:db8::/48\n"
	    "deny 198.51.100.0/24 10.0.0.0/8 ::ffff:192.0.2.0/120\n"
	    "rate-exempt 192.0.2.1\nudp-deny-source-ports none\n"
	    "udp-rate 6000/m burst 7\nudp-byte-rate 1000/h burst 3\n"
	    "udp-global-rate unlimited\ntcp-min-rate 100k/h\n"
	    "tcp-max-lifetime off\ntcp-max-bytes 1025\ntcp-buffer 513\n"
	    "udp-loop-guard off repeats 9 window 1500ms hold 2h\n"
	    "log syslog /run/x.sock\nlog-format json\nlog-level debug\n"
	    "metrics 192.0.2.9:9100\nmetrics-allow 192.0.2.0/24\n"
	    "allow-downgrade xdp-prefilter fsize-limit\n"
	    "xdp-prefilter eth0 veth1 mode native\nenforce log-only\n"
	    "sandbox-violation log\nlandlock required\n"
	    "worker-restart-limit unlimited\ntcp-idle-timeout 100ms\n");
}

/* Lists longer than one line, every one of them. */
static void
test_print_round_trips_long_lists(void **state)
{
	static char text[64 * 1024];
	size_t used = 0;

	(void)state;
	for (int port = 1; port < 2000; port += 2)
		used += (size_t)snprintf(
		    text + used, sizeof(text) - used, "%s%d",
		    port % 200 == 1 ? "\nudp-deny-source-ports " : " ", port);
	for (int i = 0; i < 250; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used,
		                         "%s 2001:db8:%x::/48",
		                         i % 20 == 0 ? "\ndeny" : "", i);
	snprintf(text + used, sizeof(text) - used, "\n");
	assert_round_trip(text);
}

/* Every keyword of the table prints, as a line or a comment. */
static void
test_print_names_every_keyword(void **state)
{
	static char out[POLICY_PRINT_MAX];
	struct policy p;

	(void)state;
	policy_defaults(&p, NULL);
	/* A setter without a printer would fail the whole text. */
	assert_true(policy_print(&p, out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "\nudp-rate 100/s burst 200\n"));
	assert_non_null(strstr(out, "\ntcp-idle-timeout 30s\n"));
	assert_non_null(strstr(out, "\n# deny: none\n"));
	assert_int_equal(policy_print(&p, out, 100), -1); /* too small */
}

static void
test_changed_keywords(void **state)
{
	struct policy a, b;
	char buf[256];

	(void)state;
	parse_ok("", &a);
	parse_ok("tcp-idle-timeout 31s\ndeny 192.0.2.0/24\nudp-rate 5/s\n", &b);
	assert_int_equal(
	    policy_changed_keywords(&a, b.acl.n ? &b : &a, buf, sizeof(buf)),
	    3);
	assert_string_equal(buf, "tcp-idle-timeout,deny,udp-rate");
	assert_int_equal(policy_changed_keywords(&a, &a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

static void
test_lost_defaults(void **state)
{
	struct policy p;
	char buf[64];

	(void)state;
	parse_ok("", &p);
	assert_int_equal(policy_lost_defaults(&p, buf, sizeof(buf)), 0);
	parse_ok("udp-deny-source-ports 8080\n", &p);
	assert_int_equal(policy_lost_defaults(&p, buf, sizeof(buf)), 6);
	assert_string_equal(buf, "0,7,13,17,19,37");
	parse_ok("udp-deny-source-ports 1-18 20-36 38-1023\n", &p);
	assert_int_equal(policy_lost_defaults(&p, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "0,19,37");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_abuse_keywords),
	    cmocka_unit_test(test_abuse_keyword_errors),
	    cmocka_unit_test(test_rate_exempt),
	    cmocka_unit_test(test_rate_exempt_errors),
	    cmocka_unit_test(test_long_conflicting_repeat),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_default_text),
	    cmocka_unit_test(test_default_file_matches),
	    cmocka_unit_test(test_every_keyword),
	    cmocka_unit_test(test_keyword_ranges),
	    cmocka_unit_test(test_chroot),
	    cmocka_unit_test(test_xdp_prefilter),
	    cmocka_unit_test(test_chroot_dotdot_at_end),
	    cmocka_unit_test(test_unnamed_keep_defaults),
	    cmocka_unit_test(test_listen_replaces_and_adds),
	    cmocka_unit_test(test_listen_replaced_per_parse),
	    cmocka_unit_test(test_listen_limit),
	    cmocka_unit_test(test_identical_repeat),
	    cmocka_unit_test(test_conflicting_repeat),
	    cmocka_unit_test(test_unknown_keyword),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_bad_value_messages),
	    cmocka_unit_test(test_comments),
	    cmocka_unit_test(test_whitespace),
	    cmocka_unit_test(test_crlf),
	    cmocka_unit_test(test_no_final_newline),
	    cmocka_unit_test(test_len_is_honoured),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_control_chars),
	    cmocka_unit_test(test_too_many_words),
	    cmocka_unit_test(test_protocols),
	    cmocka_unit_test(test_workers),
	    cmocka_unit_test(test_valid_user),
	    cmocka_unit_test(test_user_longest),
	    cmocka_unit_test(test_log_level_name),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_print_round_trips),
	    cmocka_unit_test(test_print_round_trips_long_lists),
	    cmocka_unit_test(test_print_names_every_keyword),
	    cmocka_unit_test(test_changed_keywords),
	    cmocka_unit_test(test_lost_defaults),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
