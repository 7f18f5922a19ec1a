/* Unit tests for src/cli.c: echod's flags and how they lie over the policy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "endpoint_asserts.h"

#include "cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* An argv as main() gets it: program name first, NULL after the last. */
#define ARGC(v) ((int)(sizeof(v) / sizeof((v)[0])) - 1)

#define PARSE_OK(o, ...)                                                       \
	do {                                                                   \
		char *const argv_[] = {"echod", __VA_ARGS__, NULL};            \
		parse_ok(ARGC(argv_), argv_, (o));                             \
	} while (0)

#define PARSE_FAILS(needle, ...)                                               \
	do {                                                                   \
		char *const argv_[] = {"echod", __VA_ARGS__, NULL};            \
		parse_fails(ARGC(argv_), argv_, (needle));                     \
	} while (0)

static void
parse_ok(int argc, char *const argv[], struct options *o)
{
	char err[256] = "";

	memset(o, 0xa5, sizeof(*o));
	if (cli_parse(argc, argv, o, err, sizeof(err)) != 0)
		fail_msg("cli_parse rejected (argv[1] '%s'): %s", argv[1], err);
}

static void
parse_fails(int argc, char *const argv[], const char *needle)
{
	struct options o;
	char err[256];

	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	if (cli_parse(argc, argv, &o, err, sizeof(err)) != -1)
		fail_msg("cli_parse accepted (argv[1] '%s')", argv[1]);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	/* One line. */
	assert_null(strchr(err, '\n'));
}

static void
assert_no_flags(const struct options *o)
{
	assert_null(o->config);
	assert_false(o->check_only);
	assert_int_equal(o->nlisten, 0);
	assert_false(o->port_set);
	assert_int_equal(o->port, 7);
	assert_null(o->user);
	assert_false(o->workers_set);
	assert_int_equal(o->workers, 0);
	assert_int_equal(o->verbose, 0);
	assert_false(o->version);
	assert_false(o->help);
}

/* ---- cli_parse ---- */

static void
test_no_args(void **state)
{
	char *const argv[] = {"echod", NULL};
	struct options o;

	(void)state;
	parse_ok(1, argv, &o);
	assert_no_flags(&o);
}

static void
test_each_flag(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "-c", "/etc/echod.conf");
	assert_string_equal(o.config, "/etc/echod.conf");
	assert_false(o.check_only);

	PARSE_OK(&o, "-t");
	assert_true(o.check_only);
	assert_null(o.config);

	PARSE_OK(&o, "-l", "127.0.0.1:7007");
	assert_int_equal(o.nlisten, 1);
	assert_ep4(&o.listen[0], "127.0.0.1", 7007, true);

	PARSE_OK(&o, "-p", "7007");
	assert_true(o.port_set);
	assert_int_equal(o.port, 7007);

	PARSE_OK(&o, "-u", "echod");
	assert_string_equal(o.user, "echod");

	PARSE_OK(&o, "-w", "4");
	assert_true(o.workers_set);
	assert_int_equal(o.workers, 4);

	PARSE_OK(&o, "-v");
	assert_int_equal(o.verbose, 1);
	assert_false(o.version);

	PARSE_OK(&o, "-V");
	assert_true(o.version);
	assert_int_equal(o.verbose, 0);
	assert_false(o.help);

	PARSE_OK(&o, "-h");
	assert_true(o.help);
	assert_false(o.version);
}

static void
test_all_flags_together(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "-c", "x.conf", "-t", "-l", "::1", "-p", "9", "-u",
	         "nobody", "-w", "auto", "-v", "-v", "-V", "-h");
	assert_string_equal(o.config, "x.conf");
	assert_true(o.check_only);
	assert_int_equal(o.nlisten, 1);
	assert_ep6(&o.listen[0], "::1", 0, false);
	assert_true(o.port_set);
	assert_int_equal(o.port, 9);
	assert_string_equal(o.user, "nobody");
	assert_true(o.workers_set);
	assert_int_equal(o.workers, 0);
	assert_int_equal(o.verbose, 2);
	assert_true(o.version);
	assert_true(o.help);
}

static void
test_combined_flags(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "-tv");
	assert_true(o.check_only);
	assert_int_equal(o.verbose, 1);
	assert_false(o.version);

	PARSE_OK(&o, "-vvv");
	assert_int_equal(o.verbose, 3);

	PARSE_OK(&o, "-tvVh");
	assert_true(o.check_only);
	assert_int_equal(o.verbose, 1);
	assert_true(o.version);
	assert_true(o.help);

	PARSE_OK(&o, "-v", "-tv", "-v");
	assert_int_equal(o.verbose, 3);
	assert_true(o.check_only);

	/* A value flag ends the group and takes the rest of it... */
	PARSE_OK(&o, "-tp7007");
	assert_true(o.check_only);
	assert_int_equal(o.port, 7007);
	assert_true(o.port_set);
	/* ...or the next word. */
	PARSE_OK(&o, "-vc", "file.conf", "-t");
	assert_int_equal(o.verbose, 1);
	assert_string_equal(o.config, "file.conf");
	assert_true(o.check_only);
	/* Letters after a value flag are its value, not flags. */
	PARSE_OK(&o, "-ctv");
	assert_string_equal(o.config, "tv");
	assert_false(o.check_only);
	assert_int_equal(o.verbose, 0);
}

static void
test_attached_values(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "-p7007");
	assert_true(o.port_set);
	assert_int_equal(o.port, 7007);

	PARSE_OK(&o, "-cfile.conf");
	assert_string_equal(o.config, "file.conf");

	PARSE_OK(&o, "-l[::1]:7007");
	assert_int_equal(o.nlisten, 1);
	assert_ep6(&o.listen[0], "::1", 7007, true);

	PARSE_OK(&o, "-uechod");
	assert_string_equal(o.user, "echod");

	PARSE_OK(&o, "-w16");
	assert_true(o.workers_set);
	assert_int_equal(o.workers, 16);

	PARSE_OK(&o, "-wauto");
	assert_true(o.workers_set);
	assert_int_equal(o.workers, 0);

	/* A value that starts with '-' is still the value. */
	PARSE_OK(&o, "-c", "-t");
	assert_string_equal(o.config, "-t");
	assert_false(o.check_only);
}

static void
test_listen_repeatable(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "-l", "127.0.0.1", "-l[::1]:9", "-l", "10.0.0.1:8", "-l",
	         "::");
	assert_int_equal(o.nlisten, 4);
	assert_ep4(&o.listen[0], "127.0.0.1", 0, false);
	assert_ep6(&o.listen[1], "::1", 9, true);
	assert_ep4(&o.listen[2], "10.0.0.1", 8, true);
	assert_ep6(&o.listen[3], "::", 0, false);
}

static void
test_listen_limit(void **state)
{
	char *argv[2 + 2 * (POLICY_MAX_LISTEN + 1) + 1];
	char addrs[POLICY_MAX_LISTEN + 1][32];
	struct options o;
	char err[128];
	int argc = 1;

	(void)state;
	argv[0] = "echod";
	for (int i = 0; i < POLICY_MAX_LISTEN; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "10.0.0.%d:7", i + 1);
		argv[argc++] = "-l";
		argv[argc++] = addrs[i];
	}
	argv[argc] = NULL;
	assert_int_equal(cli_parse(argc, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.nlisten, POLICY_MAX_LISTEN);
	assert_ep4(&o.listen[POLICY_MAX_LISTEN - 1], "10.0.0.16", 7, true);

	snprintf(addrs[POLICY_MAX_LISTEN], 32, "10.0.0.17:7");
	argv[argc++] = "-l";
	argv[argc++] = addrs[POLICY_MAX_LISTEN];
	argv[argc] = NULL;
	assert_int_equal(cli_parse(argc, argv, &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "-l"));
}

static void
test_bad_listen(void **state)
{
	(void)state;
	PARSE_FAILS("-l", "-l", "localhost");
	PARSE_FAILS("'localhost:7'", "-l", "localhost:7");
	PARSE_FAILS("-l", "-l", "1.2.3.4:");
	PARSE_FAILS("-l", "-l", "1.2.3.4:70000");
	PARSE_FAILS("-l", "-l", "[::1");
	PARSE_FAILS("-l", "-l", "");
	/* Port 0 would give each worker's socket a different port. */
	PARSE_FAILS("1 to 65535", "-l", "127.0.0.1:0");
	PARSE_FAILS("given twice", "-l", "[::1]:7", "-l", "[::1]:7");
}

/* Ports filled in by -p can make two listen addresses one. */
static void
test_listen_same_after_port(void **state)
{
	struct options o;
	struct policy p;
	char err[256];

	(void)state;
	PARSE_OK(&o, "-l", "127.0.0.1", "-l", "127.0.0.1:9", "-p", "9");
	policy_defaults(&p, NULL);
	cli_apply(&o, &p);
	assert_int_equal(cli_check_listen(&p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "127.0.0.1:9 is given twice"));
	PARSE_OK(&o, "-l", "127.0.0.1", "-l", "127.0.0.1:9", "-p", "8");
	policy_defaults(&p, NULL);
	cli_apply(&o, &p);
	assert_int_equal(cli_check_listen(&p, err, sizeof(err)), 0);
}

static void
test_workers(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "-w", "auto");
	assert_true(o.workers_set);
	assert_int_equal(o.workers, 0);
	PARSE_OK(&o, "-w", "1");
	assert_int_equal(o.workers, 1);
	PARSE_OK(&o, "-w", "256");
	assert_int_equal(o.workers, 256);
	PARSE_FAILS("-w", "-w", "0");
	PARSE_FAILS("-w", "-w", "257");
	PARSE_FAILS("-w", "-w", "-1");
	PARSE_FAILS("-w", "-w", "AUTO");
	PARSE_FAILS("-w", "-w", "two");
	PARSE_FAILS("-w", "-w", "");
	PARSE_FAILS("-w", "-w", "4 ");
	PARSE_FAILS("-w", "-w", "99999999999999999999");
}

static void
test_ports(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "-p", "1");
	assert_int_equal(o.port, 1);
	PARSE_OK(&o, "-p", "65535");
	assert_int_equal(o.port, 65535);
	PARSE_OK(&o, "-p", "7");
	assert_true(o.port_set);
	assert_int_equal(o.port, 7);
	PARSE_FAILS("'0'", "-p", "0");
	PARSE_FAILS("-p", "-p0");
	PARSE_FAILS("'70000'", "-p", "70000");
	PARSE_FAILS("-p", "-p", "65536");
	PARSE_FAILS("-p", "-p", "-1");
	PARSE_FAILS("-p", "-p", "x");
	PARSE_FAILS("-p", "-p", "");
	PARSE_FAILS("-p", "-p", " 7");
	PARSE_FAILS("-p", "-p", "7/tcp");
	PARSE_FAILS("-p", "-p", "99999999999999999999");
}

static void
test_bad_user(void **state)
{
	(void)state;
	PARSE_FAILS("-u", "-u", "");
	PARSE_FAILS("-u", "-u", "-root");
	PARSE_FAILS("-u", "-u", "a/b");
	PARSE_FAILS("-u", "-u", "a b");
	PARSE_FAILS("-u", "-u", "a:b");
}

static void
test_unknown_flag(void **state)
{
	struct options o;
	char err[128] = "";
	char *const argv[] = {"echod", "-x", NULL};

	(void)state;
	assert_int_equal(cli_parse(2, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown option -x");
	PARSE_FAILS("unknown option -q", "-tq");
	PARSE_FAILS("unknown option -P", "-P", "7");
	PARSE_FAILS("unknown option -L", "-L", "::1");
	PARSE_FAILS("unknown option -", "--help");
	PARSE_FAILS("unknown option -z", "-t", "-v", "-z");
}

static void
test_missing_value(void **state)
{
	struct options o;
	char err[128] = "";
	char *const argv[] = {"echod", "-t", "-c", NULL};

	(void)state;
	assert_int_equal(cli_parse(3, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "option -c needs a value");
	PARSE_FAILS("option -l needs a value", "-l");
	PARSE_FAILS("option -p needs a value", "-p");
	PARSE_FAILS("option -u needs a value", "-u");
	PARSE_FAILS("option -w needs a value", "-w");
	PARSE_FAILS("option -c needs a value", "-tvc");
}

static void
test_extra_positional(void **state)
{
	struct options o;
	char err[128] = "";
	char *const argv[] = {"echod", "-t", "foo", NULL};

	(void)state;
	assert_int_equal(cli_parse(3, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "unexpected argument 'foo'");
	PARSE_FAILS("'foo'", "foo");
	PARSE_FAILS("'foo'", "foo", "-t");
	PARSE_FAILS("'-'", "-");
	PARSE_FAILS("'bar'", "-c", "x", "bar");
	PARSE_FAILS("'7007'", "-p", "7", "7007");
}

static void
test_double_dash(void **state)
{
	struct options o;

	(void)state;
	PARSE_OK(&o, "--");
	assert_no_flags(&o);
	PARSE_OK(&o, "-t", "--");
	assert_true(o.check_only);
	/* After --, nothing is a flag, and echod takes no operands. */
	PARSE_FAILS("unexpected argument '-t'", "--", "-t");
	PARSE_FAILS("unexpected argument 'foo'", "-v", "--", "foo");
	PARSE_FAILS("unexpected argument '--'", "--", "--");
	/* "--" as a value is a value. */
	PARSE_OK(&o, "-c", "--");
	assert_string_equal(o.config, "--");
}

static void
test_err_truncated(void **state)
{
	struct options o;
	char err[8];
	char *const argv[] = {"echod", "-x", NULL};

	(void)state;
	memset(err, 'X', sizeof(err));
	assert_int_equal(cli_parse(2, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown");
}

static void
test_usage(void **state)
{
	(void)state;
	assert_int_equal(strncmp(cli_usage, "usage: echod ", 13), 0);
	assert_non_null(strstr(cli_usage, "-w WORKERS"));
	assert_int_equal(cli_usage[strlen(cli_usage) - 1], '\n');
}

/* ---- cli_apply ---- */

static void
parse_policy(const char *text, struct policy *p)
{
	struct policy_error err;

	policy_defaults(p, NULL);
	if (policy_parse(text, strlen(text), p, &err) != 0)
		fail_msg("policy rejected at %u: %s", err.line, err.msg);
}

static void
test_apply_nothing(void **state)
{
	struct options o;
	struct policy p, before;

	(void)state;
	PARSE_OK(&o, "-t");
	policy_defaults(&p, NULL);
	memcpy(&before, &p, sizeof(p));
	cli_apply(&o, &p);
	/* Default listen addresses get the default port 7. */
	assert_int_equal(p.nlisten, 2);
	assert_ep4(&p.listen[0], "0.0.0.0", 7, false);
	assert_ep6(&p.listen[1], "::", 7, false);
	assert_int_equal(p.workers, 0);
	assert_string_equal(p.user, "");
	assert_int_equal(p.log_level, LOG_INFO);
	assert_true(p.tcp && p.udp);
	/* Nothing else moved. */
	memcpy(p.listen, before.listen, sizeof(p.listen));
	assert_memory_equal(&p, &before, sizeof(p));
}

static void
test_apply_listen_replaces(void **state)
{
	struct options o;
	struct policy p;

	(void)state;
	parse_policy("listen 10.0.0.1:5 10.0.0.2 10.0.0.3\n", &p);
	PARSE_OK(&o, "-l", "127.0.0.1", "-l", "[::1]:9");
	cli_apply(&o, &p);
	assert_int_equal(p.nlisten, 2);
	assert_ep4(&p.listen[0], "127.0.0.1", 7, false);
	assert_ep6(&p.listen[1], "::1", 9, true);

	/* Without -l the policy's list stays. */
	parse_policy("listen 10.0.0.1:5 10.0.0.2\n", &p);
	PARSE_OK(&o, "-v");
	cli_apply(&o, &p);
	assert_int_equal(p.nlisten, 2);
	assert_ep4(&p.listen[0], "10.0.0.1", 5, true);
	assert_ep4(&p.listen[1], "10.0.0.2", 7, false);
}

static void
test_apply_port_fills(void **state)
{
	struct options o;
	struct policy p;

	(void)state;
	/* -p fills only the addresses written without a port. */
	parse_policy("listen 10.0.0.1:5 10.0.0.2 [::1]:6 ::2\n", &p);
	PARSE_OK(&o, "-p", "7007");
	cli_apply(&o, &p);
	assert_int_equal(p.nlisten, 4);
	assert_ep4(&p.listen[0], "10.0.0.1", 5, true);
	assert_ep4(&p.listen[1], "10.0.0.2", 7007, false);
	assert_ep6(&p.listen[2], "::1", 6, true);
	assert_ep6(&p.listen[3], "::2", 7007, false);

	/* With -l too. */
	policy_defaults(&p, NULL);
	PARSE_OK(&o, "-l", "1.2.3.4:8", "-l", "::1", "-p9");
	cli_apply(&o, &p);
	assert_int_equal(p.nlisten, 2);
	assert_ep4(&p.listen[0], "1.2.3.4", 8, true);
	assert_ep6(&p.listen[1], "::1", 9, false);

	/* Defaults with -p. */
	policy_defaults(&p, NULL);
	PARSE_OK(&o, "-p", "65535");
	cli_apply(&o, &p);
	assert_ep4(&p.listen[0], "0.0.0.0", 65535, false);
	assert_ep6(&p.listen[1], "::", 65535, false);
}

static void
test_apply_verbose(void **state)
{
	struct options o;
	struct policy p;

	(void)state;
	policy_defaults(&p, NULL);
	PARSE_OK(&o, "-v");
	cli_apply(&o, &p);
	assert_int_equal(p.log_level, LOG_DEBUG);

	/* Capped at debug. */
	policy_defaults(&p, NULL);
	PARSE_OK(&o, "-vvvvv");
	cli_apply(&o, &p);
	assert_int_equal(p.log_level, LOG_DEBUG);

	parse_policy("log-level error\n", &p);
	PARSE_OK(&o, "-v");
	cli_apply(&o, &p);
	assert_int_equal(p.log_level, LOG_WARN);

	parse_policy("log-level error\n", &p);
	PARSE_OK(&o, "-vv");
	cli_apply(&o, &p);
	assert_int_equal(p.log_level, LOG_INFO);

	parse_policy("log-level error\n", &p);
	PARSE_OK(&o, "-v", "-v", "-v");
	cli_apply(&o, &p);
	assert_int_equal(p.log_level, LOG_DEBUG);

	/* No -v: the policy's level. */
	parse_policy("log-level warn\n", &p);
	PARSE_OK(&o, "-t");
	cli_apply(&o, &p);
	assert_int_equal(p.log_level, LOG_WARN);
}

static void
test_apply_user_workers(void **state)
{
	struct options o;
	struct policy p;

	(void)state;
	parse_policy("user echod\nworkers 4\n", &p);
	PARSE_OK(&o, "-u", "nobody", "-w", "2");
	cli_apply(&o, &p);
	assert_string_equal(p.user, "nobody");
	assert_int_equal(p.workers, 2);

	/* -w auto overrides a number in the policy. */
	parse_policy("workers 4\n", &p);
	PARSE_OK(&o, "-w", "auto");
	cli_apply(&o, &p);
	assert_int_equal(p.workers, 0);

	/* Without -u/-w the policy stands. */
	parse_policy("user echod\nworkers 4\n", &p);
	PARSE_OK(&o, "-v");
	cli_apply(&o, &p);
	assert_string_equal(p.user, "echod");
	assert_int_equal(p.workers, 4);

	/* -u on the (unset) default. */
	policy_defaults(&p, NULL);
	PARSE_OK(&o, "-u_echod");
	cli_apply(&o, &p);
	assert_string_equal(p.user, "_echod");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listen_same_after_port),
	    cmocka_unit_test(test_no_args),
	    cmocka_unit_test(test_each_flag),
	    cmocka_unit_test(test_all_flags_together),
	    cmocka_unit_test(test_combined_flags),
	    cmocka_unit_test(test_attached_values),
	    cmocka_unit_test(test_listen_repeatable),
	    cmocka_unit_test(test_listen_limit),
	    cmocka_unit_test(test_bad_listen),
	    cmocka_unit_test(test_workers),
	    cmocka_unit_test(test_ports),
	    cmocka_unit_test(test_bad_user),
	    cmocka_unit_test(test_unknown_flag),
	    cmocka_unit_test(test_missing_value),
	    cmocka_unit_test(test_extra_positional),
	    cmocka_unit_test(test_double_dash),
	    cmocka_unit_test(test_err_truncated),
	    cmocka_unit_test(test_usage),
	    cmocka_unit_test(test_apply_nothing),
	    cmocka_unit_test(test_apply_listen_replaces),
	    cmocka_unit_test(test_apply_port_fills),
	    cmocka_unit_test(test_apply_verbose),
	    cmocka_unit_test(test_apply_user_workers),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
