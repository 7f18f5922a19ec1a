/*
 * fuzz_policy: a whole policy file, applied over the built-in defaults.
 *
 * Invariants: on error, err.line is 1..lines+1 and err.msg is a non-empty
 * NUL-terminated string; on success every value lies in the range the
 * directives table in src/policy.c documents, the lists are sane, and a
 * second parse gives the same bytes. A file that fails is then parsed
 * line by line (first 64 lines), each line alone over the defaults, with
 * the same checks. The whole input is also loaded as a file (a memfd, by
 * its /proc/self/fd path): policy_load_file must agree with policy_parse
 * byte for byte, errors included.
 * A policy that parsed prints (echod -T) as text that parses over the
 * defaults and prints the same again.
 */
#include "acl.h"
#include "addr.h"
#include "policy.h"

#include "fuzz.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct policy defaults;
static bool primed;

static void
check_bucket(const struct bucket_cfg *b, bool bytes)
{
	if (b->rate == 0) {
		/* "unlimited" */
		CHECK(b->period_ms == 1000 && b->burst == 0);
		return;
	}
	CHECK(b->period_ms == 1000 || b->period_ms == 60000 ||
	      b->period_ms == 3600000);
	CHECK(b->rate <= (UINT64_C(1) << 48));
	CHECK(b->burst >= 1);
	if (!bytes)
		CHECK(b->burst <= UINT32_MAX);
	else
		CHECK(b->burst <= (UINT64_C(1) << 48));
}

static void
check_cidr(const struct cidr *c)
{
	struct ipaddr m;

	CHECK(c->addr.family == AF_INET || c->addr.family == AF_INET6);
	CHECK(c->prefix <= (c->addr.family == AF_INET ? 32 : 128));
	ipaddr_prefix(&c->addr, c->prefix, &m);
	CHECK(ipaddr_equal(&m, &c->addr));
}

static void
check_policy(const struct policy *p)
{
	CHECK(p->nlisten <= POLICY_MAX_LISTEN);
	for (size_t i = 0; i < p->nlisten; i++) {
		const struct endpoint *e = &p->listen[i];
		if (e->ss.ss_family == AF_INET)
			CHECK(e->len == sizeof(struct sockaddr_in));
		else
			CHECK(e->ss.ss_family == AF_INET6 &&
			      e->len == sizeof(struct sockaddr_in6));
		if (!e->has_port)
			CHECK(endpoint_port(e) == 0);
		/* The index of an endpoint is its first equal's. */
		CHECK(policy_listen_index(p, e) <= i);
	}
	CHECK(policy_listen_index(p, &(struct endpoint){0}) == p->nlisten);
	CHECK(p->xdp_mode <= XDP_MODE_GENERIC);
	CHECK(xdp_mode_name(p->xdp_mode) != NULL);
	CHECK(p->nxdp <= POLICY_MAX_XDP);
	for (size_t i = 0; i < p->nxdp; i++) {
		size_t n = strnlen(p->xdp_ifaces[i], POLICY_IFNAME_MAX);
		CHECK(n >= 1 && n < POLICY_IFNAME_MAX);
		CHECK(strpbrk(p->xdp_ifaces[i], "/: \t") == NULL);
	}
	CHECK(!p->metrics_on || p->metrics.has_port);
	CHECK(p->metrics_allow.n <= ACL_MAX - 4);
	CHECK(memchr(p->syslog_path, '\0', sizeof(p->syslog_path)) != NULL);
	CHECK(!p->log_syslog || p->syslog_path[0] == '/');
	CHECK(p->tcp || p->udp);
	CHECK(p->workers <= 256);
	CHECK(memchr(p->user, '\0', sizeof(p->user)) != NULL);
	CHECK(p->user[0] == '\0' || policy_valid_user(p->user));
	CHECK(p->tcp_max_connections >= 1 && p->tcp_max_connections <= 100000);
	CHECK(p->tcp_idle_timeout_ms >= 100 &&
	      p->tcp_idle_timeout_ms <= 24 * 3600 * 1000);
	CHECK(p->tcp_buffer >= 512 && p->tcp_buffer <= 16 * 1024 * 1024);
	CHECK(p->udp_max_datagram <= 65535);
	CHECK(p->log_level <= LOG_DEBUG);
	CHECK(log_level_name(p->log_level) != NULL);
	CHECK(memchr(p->chroot_dir, '\0', sizeof(p->chroot_dir)) != NULL);
	CHECK(p->chroot_dir[0] == '/' && strcmp(p->chroot_dir, "/") != 0 &&
	      strstr(p->chroot_dir, "/../") == NULL);
	CHECK(p->acl.n <= ACL_MAX);
	for (size_t i = 0; i < p->acl.n; i++) {
		check_cidr(&p->acl.rules[i].net);
		/* acl_finish: longest prefix first. */
		if (i > 0)
			CHECK(p->acl.rules[i - 1].net.prefix >=
			      p->acl.rules[i].net.prefix);
		/* Never one prefix with both verdicts. */
		for (size_t j = 0; j < i; j++)
			CHECK(
			    !(p->acl.rules[j].net.prefix ==
			          p->acl.rules[i].net.prefix &&
			      ipaddr_equal(&p->acl.rules[j].net.addr,
			                   &p->acl.rules[i].net.addr) &&
			      p->acl.rules[j].allow != p->acl.rules[i].allow));
	}
	/* rate-exempt: prefixes only, each listed once, longest first. */
	CHECK(p->rate_exempt.n <= ACL_MAX);
	for (size_t i = 0; i < p->rate_exempt.n; i++) {
		const struct acl_rule *r = &p->rate_exempt.rules[i];
		check_cidr(&r->net);
		CHECK(r->allow);
		if (i > 0)
			CHECK(r[-1].net.prefix >= r->net.prefix);
		for (size_t j = 0; j < i; j++)
			CHECK(!(p->rate_exempt.rules[j].net.prefix ==
			            r->net.prefix &&
			        ipaddr_equal(&p->rate_exempt.rules[j].net.addr,
			                     &r->net.addr)));
	}
	CHECK(p->rate_prefix_v4 >= 8 && p->rate_prefix_v4 <= 32);
	CHECK(p->rate_prefix_v6 >= 16 && p->rate_prefix_v6 <= 128);
	CHECK(p->rate_table_size >= 64 && p->rate_table_size <= 16777216);
	CHECK(p->loop_repeats >= 2 && p->loop_repeats <= 1000);
	CHECK(p->loop_window_ms > 0 &&
	      p->loop_window_ms <= (UINT64_C(1) << 48));
	CHECK(p->loop_hold_ms > 0 && p->loop_hold_ms <= (UINT64_C(1) << 48));
	check_bucket(&p->udp_rate, false);
	check_bucket(&p->udp_byte_rate, true);
	check_bucket(&p->udp_global_rate, false);
	CHECK(p->tcp_max_per_source >= 1 && p->tcp_max_per_source <= 100000);
	check_bucket(&p->tcp_connect_rate, false);
	check_bucket(&p->tcp_byte_rate, true);
	CHECK(p->tcp_max_lifetime_ms == 0 ||
	      (p->tcp_max_lifetime_ms >= 1000 &&
	       p->tcp_max_lifetime_ms <= UINT64_C(30) * 24 * 3600 * 1000));
	CHECK(p->tcp_max_bytes <= (UINT64_C(1) << 40));
}

/* A policy and its -T text's policy differ in no keyword; the defaults
 * and p differ in at most every keyword; the loop ports p no longer
 * denies are exactly the ones missing from its list. */
static void
check_compared(const struct policy *p, const struct policy *back)
{
	static const uint16_t loop_ports[] = {0, 7, 13, 17, 19, 37};
	char names[2048], ports[64];
	int n, missing = 0;

	CHECK(policy_changed_keywords(p, back, names, sizeof(names)) == 0);
	CHECK(names[0] == '\0');
	n = policy_changed_keywords(&defaults, p, names, sizeof(names));
	CHECK(n >= 0 && n <= 64);
	CHECK((n == 0) == (names[0] == '\0'));
	if (n > 0)
		CHECK(policy_changed_keywords(&defaults, p, names, 2) == -1);
	CHECK(policy_changed_keywords(p, p, names, 0) == -1);
	for (size_t i = 0; i < sizeof(loop_ports) / sizeof(loop_ports[0]); i++)
		missing += !portset_has(&p->udp_deny_ports, loop_ports[i]);
	CHECK(policy_lost_defaults(p, ports, sizeof(ports)) == missing);
	CHECK(policy_lost_defaults(p, ports, 0) == -1);
}

/* -T's text of p parses over the defaults to a policy that prints the
 * same text. */
static void
check_printed(const struct policy *p)
{
	static char one[POLICY_PRINT_MAX], two[POLICY_PRINT_MAX];
	static struct policy back;
	struct policy_error err;
	int n = policy_print(p, one, sizeof(one));

	CHECK(n > 0 && (size_t)n == strlen(one));
	memcpy(&back, &defaults, sizeof(back));
	if (policy_parse(one, (size_t)n, &back, &err) != 0) {
		fprintf(stderr, "-T text refused at line %u: %s\n%s", err.line,
		        err.msg, one);
		CHECK(0);
	}
	check_policy(&back);
	CHECK(policy_print(&back, two, sizeof(two)) == n);
	CHECK(memcmp(one, two, (size_t)n) == 0);
	check_compared(p, &back);
	/* Too small a buffer is said, never a cut text passed as whole. */
	CHECK(policy_print(p, two, (size_t)n) == -1 && two[n - 1] == '\0');
	CHECK(policy_print(p, two, 0) == -1);
}

/* Parse buf over the defaults and check the outcome; 0 if it parsed. The
 * error (line 0 and "" on success) is left in *errp. */
static int
parse_and_check(const char *buf, size_t size, struct policy *p,
                struct policy_error *errp)
{
	static struct policy again;
	struct policy_error err;
	unsigned lines = 1;
	int rc;

	for (size_t i = 0; i < size; i++)
		lines += buf[i] == '\n';
	memcpy(p, &defaults, sizeof(*p));
	memset(&err, 0xa5, sizeof(err)); /* policy_parse must set it all */
	rc = policy_parse(buf, size, p, &err);
	CHECK(rc == 0 || rc == -1);
	memcpy(errp, &err, sizeof(err));
	if (rc != 0) {
		CHECK(err.line >= 1 && err.line <= lines);
		CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
		CHECK(err.msg[0] != '\0');
		return -1;
	}
	CHECK(err.line == 0);
	check_policy(p);

	/* Deterministic: the same text over the same start gives the same. */
	memcpy(&again, &defaults, sizeof(again));
	CHECK(policy_parse(buf, size, &again, &err) == 0);
	CHECK(memcmp(&again, p, sizeof(*p)) == 0);
	check_printed(p);
	return 0;
}

/* The input as a file: the same verdict, error and policy as parsing it.
 * The memfd is made once and rewritten for every input. */
static void
load_and_compare(const char *buf, size_t size, const struct policy *parsed,
                 int parsed_rc, const struct policy_error *parsed_err)
{
	static struct policy loaded;
	static char path[64];
	static int fd = -1;
	struct policy_error err;
	int rc;

	if (fd < 0) {
		fd = memfd_create("fuzz_policy", MFD_CLOEXEC);
		CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(size == 0 || pwrite(fd, buf, size, 0) == (ssize_t)size);
	memcpy(&loaded, &defaults, sizeof(loaded));
	rc = policy_load_file(path, &loaded, &err);
	CHECK(rc == parsed_rc);
	CHECK(err.line == parsed_err->line &&
	      strcmp(err.msg, parsed_err->msg) == 0);
	if (rc == 0)
		CHECK(memcmp(&loaded, parsed, sizeof(loaded)) == 0);
}

/* What a file can be but text: missing, a directory, unreadable (a
 * regular file whose read fails: /proc/self/mem at offset 0), too large.
 * Once. */
static void
load_errors(void)
{
	static struct policy p;
	struct policy_error err;
	int fd;

	CHECK(policy_load_file("/nonexistent/echod.conf", &p, &err) == -1);
	CHECK(err.line == 0 && strstr(err.msg, "cannot open") != NULL);
	CHECK(policy_load_file("/", &p, &err) == -1);
	CHECK(strcmp(err.msg, "not a regular file") == 0);
	CHECK(policy_load_file("/proc/self/mem", &p, &err) == -1);
	CHECK(strstr(err.msg, "cannot read") != NULL);
	fd = memfd_create("fuzz_policy_big", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, 1024 * 1024) == 0);
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		CHECK(policy_load_file(path, &p, &err) == -1);
		CHECK(strstr(err.msg, "larger than") != NULL);
	}
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct policy p;
	struct policy_error err;
	const char *buf = (const char *)data;
	size_t pos = 0;
	int rc;

	if (!primed) {
		policy_defaults(&defaults, NULL);
		check_policy(&defaults);
		load_errors();
		primed = true;
	}
	rc = parse_and_check(buf, size, &p, &err);
	load_and_compare(buf, size, &p, rc, &err);
	if (rc == 0)
		return 0;
	/*
	 * The file failed at its first bad line. Each of the first lines on
	 * its own (over the defaults) must obey the same rules: so one seed
	 * can hold many kinds of mistake, and the fuzzer reaches the lines
	 * after the first error too.
	 */
	for (int n = 0; n < 64 && pos < size; n++) {
		const char *nl = memchr(buf + pos, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - (buf + pos)) : size - pos;

		parse_and_check(buf + pos, len, &p, &err);
		pos += len + 1;
	}
	return 0;
}
