/* Unit tests for src/metrics.c's exposition: every counter has its place,
 * each metric's HELP and TYPE come once and before its samples, reasons
 * are labels, label values are escaped, and a short buffer is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"

#include <stdio.h>
#include <string.h>

static char text[METRICS_MAX_RESPONSE];

static const struct metrics_facts facts = {
    .version = "1.2.3",
    .seccomp = "kill",
    .landlock = "none",
    .chroot = "/var/empty/a\"b\\c",
    .user = "echod",
    .workers = 4,
    .workers_alive = 3,
};

static void
test_every_counter_is_exported(void **state)
{
	(void)state;
	assert_true(metrics_covers_every_counter());
}

static size_t
render(struct counters *c)
{
	return metrics_render(c, &facts, text, sizeof(text));
}

static void
test_values_and_labels(void **state)
{
	struct counters c;
	size_t n;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.udp_drop_rate = 17;
	c.tcp_refused_per_source = 5;
	c.tcp_active = 9;
	c.udp_bytes_out = 123456789012ULL;
	n = render(&c);
	assert_true(n > 0 && n < sizeof(text));
	assert_int_equal(strlen(text), n);
	assert_non_null(
	    strstr(text, "\nechod_udp_dropped_total{reason=\"rate\"} 17\n"));
	assert_non_null(strstr(
	    text, "\nechod_tcp_refused_total{reason=\"per_source\"} 5\n"));
	assert_non_null(strstr(text, "\nechod_tcp_connections_open 9\n"));
	assert_non_null(strstr(
	    text, "\nechod_bytes_echoed_total{proto=\"udp\"} 123456789012\n"));
	assert_non_null(strstr(text, "\nechod_workers 4\n"));
	assert_non_null(strstr(text, "\nechod_workers_alive 3\n"));
	assert_non_null(strstr(text, "echod_build_info{version=\"1.2.3\","
	                             "seccomp=\"kill\",landlock=\"none\","
	                             "chroot=\"/var/empty/a\\\"b\\\\c\","
	                             "user=\"echod\"} 1\n"));
}

static void
test_help_and_type_once_before_samples(void **state)
{
	struct counters c;
	char seen[64][80];
	size_t nseen = 0;
	char *line, *save = NULL;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_true(render(&c) > 0);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[80];

		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%79s", name), 1);
			for (size_t i = 0; i < nseen; i++)
				assert_string_not_equal(seen[i], name);
			assert_true(nseen < 64);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char type[16];
			assert_int_equal(
			    sscanf(line + 7, "%79s %15s", name, type), 2);
			assert_string_equal(name, seen[nseen - 1]);
			assert_true(strcmp(type, "counter") == 0 ||
			            strcmp(type, "gauge") == 0);
			if (strcmp(type, "counter") == 0)
				assert_non_null(strstr(name, "_total"));
			continue;
		}
		/* A sample of the family announced last. */
		assert_true(nseen > 0);
		assert_int_equal(
		    strncmp(line, seen[nseen - 1], strlen(seen[nseen - 1])), 0);
		assert_true(line[strlen(seen[nseen - 1])] == ' ' ||
		            line[strlen(seen[nseen - 1])] == '{');
	}
	assert_true(nseen >= 20);
}

static void
test_short_buffer(void **state)
{
	struct counters c;
	char small[200];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(metrics_render(&c, &facts, small, sizeof(small)), 0);
	assert_int_equal(metrics_render(&c, &facts, small, 0), 0);
}

/*
 * `test_metrics --render`: the renderer as a filter for the property test
 * (tests/integration/test_metrics.py checks its output with
 * prometheus_client's parser). stdin: every counter as a little-endian
 * uint64 in COUNTER_LIST order, workers and workers_alive as uint32,
 * table_slots as uint64, then version, seccomp, landlock, chroot and user,
 * each ended by a NUL. stdout: the exposition; exit 1 if it did not fit.
 */
static int
render_stdin(void)
{
	static char in[1 << 16];
	struct counters c;
	struct metrics_facts f = {0};
	const char **strs[] = {&f.version, &f.seccomp, &f.landlock, &f.chroot,
	                       &f.user};
	size_t n = fread(in, 1, sizeof(in) - 1, stdin), at, len;
	uint32_t w[2];

	if (n < sizeof(c) + sizeof(w) + sizeof(f.table_slots))
		return 2;
	in[n] = '\0';
	memcpy(&c, in, sizeof(c));
	memcpy(w, in + sizeof(c), sizeof(w));
	memcpy(&f.table_slots, in + sizeof(c) + sizeof(w),
	       sizeof(f.table_slots));
	f.workers = w[0];
	f.workers_alive = w[1];
	at = sizeof(c) + sizeof(w) + sizeof(f.table_slots);
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		*strs[i] = in + (at < n ? at : n);
		at += strlen(*strs[i]) + 1;
	}
	len = metrics_render(&c, &f, text, sizeof(text));
	if (len == 0)
		return 1;
	return fwrite(text, 1, len, stdout) == len ? 0 : 3;
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--render") == 0)
		return render_stdin();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_counter_is_exported),
	    cmocka_unit_test(test_values_and_labels),
	    cmocka_unit_test(test_help_and_type_once_before_samples),
	    cmocka_unit_test(test_short_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
