/* sandbox: the text allowlists, the compiled rules and the loaded filter
 * agree; a sandboxed child that steps outside dies of SIGSYS. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "privdrop.h"
#include "log.h"
#include "sandbox.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NAMES 128

/* Set: libseccomp's seccomp_load refuses, as if unusable. A child whose
 * filter was compiled before the fork (sandbox_prepare) must not need it. */
static bool libseccomp_load_refused;

int
seccomp_load(const scmp_filter_ctx ctx)
{
	int (*real)(const scmp_filter_ctx) =
	    (int (*)(const scmp_filter_ctx))dlsym(RTLD_NEXT, "seccomp_load");

	return libseccomp_load_refused ? -EPERM : real(ctx);
}

struct names {
	char name[MAX_NAMES][32];
	unsigned ncmp[MAX_NAMES];
	size_t n;
};

/* Read a policy/seccomp-*.list the way a reviewer does: first word of
 * each non-comment line, and how many constraints follow it. */
static void
read_list(const char *path, struct names *out)
{
	char line[512];
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	out->n = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *cut = strstr(line, "--"), *tok, *save;
		unsigned words = 0;

		if (cut)
			*cut = '\0';
		if ((cut = strchr(line, '#')) != NULL)
			*cut = '\0';
		for (tok = strtok_r(line, " \t\n", &save); tok != NULL;
		     tok = strtok_r(NULL, " \t\n", &save)) {
			if (words++ == 0) {
				assert_true(out->n < MAX_NAMES);
				snprintf(out->name[out->n], 32, "%s", tok);
			}
		}
		if (words > 0)
			out->ncmp[out->n++] = words - 1;
	}
	fclose(f);
}

static void
assert_rules_match_text(enum sandbox_role role, const char *path)
{
	const struct sandbox_rule *r;
	size_t n = sandbox_rules(role, &r);
	struct names text;

	read_list(path, &text);
	assert_int_equal(n, text.n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(r[i].syscall, text.name[i]);
		assert_int_equal(r[i].ncmp, text.ncmp[i]);
	}
}

static void
test_compiled_rules_are_the_text(void **state)
{
	(void)state;
	assert_rules_match_text(SANDBOX_WORKER, "policy/seccomp-worker.list");
	assert_rules_match_text(SANDBOX_SUPERVISOR,
	                        "policy/seccomp-supervisor.list");
	assert_rules_match_text(SANDBOX_METRICS, "policy/seccomp-metrics.list");
	assert_rules_match_text(SANDBOX_READER, "policy/seccomp-reader.list");
	assert_rules_match_text(SANDBOX_KEEPER, "policy/seccomp-keeper.list");
}

/* The syscall numbers a built filter allows, from libseccomp's own PFC. */
static size_t
filter_syscalls(enum sandbox_role role, int *nrs, size_t max)
{
	char err[256], buf[1 << 16];
	scmp_filter_ctx ctx = sandbox_build(role, false, err, sizeof(err));
	FILE *f = tmpfile();
	size_t n = 0, len;
	char *p;

	assert_non_null(ctx);
	assert_non_null(f);
	assert_int_equal(seccomp_export_pfc(ctx, fileno(f)), 0);
	seccomp_release(ctx);
	rewind(f);
	len = fread(buf, 1, sizeof(buf) - 1, f);
	buf[len] = '\0';
	fclose(f);
	assert_non_null(strstr(buf, "action KILL_PROCESS;"));
	for (p = buf; (p = strstr(p, "if ($syscall == ")) != NULL; p++) {
		int nr = atoi(p + strlen("if ($syscall == "));
		bool seen = false;
		for (size_t i = 0; i < n; i++)
			seen |= nrs[i] == nr;
		if (!seen) {
			assert_true(n < max);
			nrs[n++] = nr;
		}
	}
	return n;
}

static void
add_list(const struct names *list, int *want, size_t *expected)
{
	for (size_t i = 0; i < list->n; i++) {
		int nr = seccomp_syscall_resolve_name(list->name[i]);
		bool dup = false;

		assert_true(nr >= 0);
		for (size_t j = 0; j < *expected; j++)
			dup |= want[j] == nr;
		if (!dup)
			want[(*expected)++] = nr;
	}
}

/* The filter of a role allows exactly its lists: the worker's, the
 * metrics process's, the supervisor's with its workers', the keeper's
 * with its metrics process's, or the reader's. */
static void
assert_filter_is_lists(enum sandbox_role role)
{
	struct names worker, extra, metrics, keeper, enosys;
	int nrs[3 * MAX_NAMES];
	size_t n = filter_syscalls(role, nrs, 3 * MAX_NAMES), expected = 0;
	int want[3 * MAX_NAMES];

	/* The reader's filter is its own list alone (reader.c). */
	read_list(role == SANDBOX_READER ? "policy/seccomp-reader.list"
	                                 : "policy/seccomp-worker.list",
	          &worker);
	read_list("policy/seccomp-supervisor.list", &extra);
	read_list("policy/seccomp-metrics.list", &metrics);
	read_list("policy/seccomp-keeper.list", &keeper);
	read_list("policy/seccomp-enosys.list", &enosys);
	/* The SIGSYS handler's way out: KILL_PROCESS (sandbox.c). */
	want[expected++] = seccomp_syscall_resolve_name("tkill");
	for (size_t i = 0; i < enosys.n; i++) {
		int nr = seccomp_syscall_resolve_name(enosys.name[i]);
		if (nr >= 0) /* unknown to this libseccomp: skipped */
			want[expected++] = nr;
	}
	/* worker holds the reader's list for the reader (read above). */
	if (role == SANDBOX_WORKER || role == SANDBOX_SUPERVISOR ||
	    role == SANDBOX_READER)
		add_list(&worker, want, &expected);
	if (role == SANDBOX_KEEPER || role == SANDBOX_METRICS)
		add_list(&metrics, want, &expected);
	if (role == SANDBOX_SUPERVISOR)
		add_list(&extra, want, &expected);
	if (role == SANDBOX_KEEPER)
		add_list(&keeper, want, &expected);
	assert_int_equal(n, expected);
	for (size_t j = 0; j < expected; j++) {
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found |= nrs[i] == want[j];
		assert_true(found);
	}
}

/* True if the built filter of role names syscall at all. */
static bool
filter_names(enum sandbox_role role, const char *syscall_name)
{
	int nrs[3 * MAX_NAMES];
	size_t n = filter_syscalls(role, nrs, 3 * MAX_NAMES);
	int nr = seccomp_syscall_resolve_name(syscall_name);

	for (size_t i = 0; i < n; i++)
		if (nrs[i] == nr)
			return true;
	return false;
}

/* The supervisor's filter holds nothing only the metrics side needs (the
 * keeper, forked before it, holds that): no Landlock, no PR_SET_NAME; its
 * accept4, recvfrom and sendto are the worker list's. The keeper's has no
 * kill and no way to a new socket or file. */
static void
test_supervisor_filter_serves_no_metrics(void **state)
{
	static const char *const not_supervisor[] = {"landlock_create_ruleset",
	                                             "landlock_restrict_self"};
	static const char *const not_keeper[] = {
	    "kill",   "tgkill", "socket", "bind",     "connect",  "openat",
	    "execve", "ptrace", "fcntl",  "recvmmsg", "sendmmsg", "splice"};
	const struct sandbox_rule *r;
	size_t n = sandbox_rules(SANDBOX_SUPERVISOR, &r);

	(void)state;
	for (size_t i = 0; i < sizeof(not_supervisor) / sizeof(*not_supervisor);
	     i++)
		assert_false(
		    filter_names(SANDBOX_SUPERVISOR, not_supervisor[i]));
	for (size_t i = 0; i < n; i++)
		assert_false(strcmp(r[i].syscall, "prctl") == 0 &&
		             r[i].cmp[0].datum_a == PR_SET_NAME);
	for (size_t i = 0; i < sizeof(not_keeper) / sizeof(*not_keeper); i++)
		assert_false(filter_names(SANDBOX_KEEPER, not_keeper[i]));
	/* The metrics process's calls are in the keeper's filter, which it
	 * inherits (assert_filter_is_lists), not in the supervisor's list. */
	assert_true(filter_names(SANDBOX_KEEPER, "accept4"));
}

/* Every line of the metrics list is a line of the worker list; and the
 * metrics process has no kill, clone, pipe2, UDP batch call or
 * prlimit64. */
static void
test_metrics_list_adds_nothing(void **state)
{
	static const char *const absent[] = {
	    "kill",      "clone", "pipe2",  "recvmmsg", "sendmmsg",
	    "prlimit64", "wait4", "openat", "socket"};
	const struct sandbox_rule *m, *w;
	size_t nm = sandbox_rules(SANDBOX_METRICS, &m);
	size_t nw = sandbox_rules(SANDBOX_WORKER, &w);

	(void)state;
	assert_true(nm > 0);
	for (size_t i = 0; i < nm; i++) {
		bool same = false;
		for (size_t j = 0; j < nw; j++)
			same |=
			    strcmp(m[i].syscall, w[j].syscall) == 0 &&
			    m[i].ncmp == w[j].ncmp &&
			    memcmp(m[i].cmp, w[j].cmp, sizeof(m[i].cmp)) == 0;
		assert_true(same);
		for (size_t k = 0; k < sizeof(absent) / sizeof(*absent); k++)
			assert_string_not_equal(m[i].syscall, absent[k]);
	}
}

static void
test_loaded_filter_is_the_text(void **state)
{
	(void)state;
	assert_filter_is_lists(SANDBOX_WORKER);
	assert_filter_is_lists(SANDBOX_SUPERVISOR);
	assert_filter_is_lists(SANDBOX_METRICS);
	assert_filter_is_lists(SANDBOX_READER);
	assert_filter_is_lists(SANDBOX_KEEPER);
}

enum probe {
	PROBE_ALLOWED,
	PROBE_EXECVE,
	PROBE_OPENAT,
	PROBE_SOCKET,
	PROBE_PTRACE,
	PROBE_MMAP_EXEC,
	PROBE_FORK,
	PROBE_CLONE3,
	PROBE_RSEQ,
	PROBE_KILL,
	PROBE_RECVMMSG,
};

/* In a child: enter a role's sandbox as echod does, then make one call. */
static int
run_probe_as(enum sandbox_role role, enum probe what, bool log_only)
{
	char err[256];
	int status, fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = {"/bin/true", NULL};
		struct timespec ts;
		void *m;

		close(fds[0]);
		if (set_no_new_privs(err, sizeof(err)) != 0 ||
		    sandbox_enter(role, log_only, err, sizeof(err)))
			_exit(100);
		switch (what) {
		case PROBE_ALLOWED:
			/* What a worker does: time, memory, a write, close. */
			clock_gettime(CLOCK_MONOTONIC, &ts);
			m = malloc(1 << 20);
			memset(m, 1, 1 << 20);
			free(m);
			if (write(fds[1], "ok", 2) != 2)
				_exit(101);
			close(fds[1]);
			break;
		case PROBE_EXECVE:
			syscall(SYS_execve, argv[0], argv, NULL);
			break;
		case PROBE_OPENAT:
			syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
			break;
		case PROBE_SOCKET:
			syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
			break;
		case PROBE_PTRACE:
			syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
			break;
		case PROBE_MMAP_EXEC:
			syscall(SYS_mmap, NULL, 4096, PROT_READ | PROT_EXEC,
			        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			break;
		case PROBE_FORK:
			syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
			break;
		case PROBE_CLONE3:
		case PROBE_RSEQ:
			/* Optional calls: ENOSYS, and the process lives. */
			if (syscall(what == PROBE_CLONE3 ? SYS_clone3
			                                 : SYS_rseq,
			            0, 0, 0, 0) != -1 ||
			    errno != ENOSYS)
				_exit(102);
			break;
		case PROBE_KILL:
			syscall(SYS_kill, 1, 0);
			break;
		case PROBE_RECVMMSG:
			syscall(SYS_recvmmsg, 0, NULL, 0, 0, NULL);
			break;
		}
		syscall(SYS_exit_group, 0);
	}
	close(fds[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (what == PROBE_ALLOWED) {
		char buf[4] = "";
		assert_int_equal(read(fds[0], buf, sizeof(buf)), 2);
		assert_memory_equal(buf, "ok", 2);
	}
	close(fds[0]);
	return status;
}

static int
run_probe(enum probe what, bool log_only)
{
	return run_probe_as(SANDBOX_WORKER, what, log_only);
}

static void
assert_killed_by_sigsys(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void
test_allowed_calls_live(void **state)
{
	int status = run_probe(PROBE_ALLOWED, false);

	(void)state;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_forbidden_calls_die(void **state)
{
	static const enum probe forbidden[] = {
	    PROBE_EXECVE, PROBE_OPENAT,    PROBE_SOCKET,
	    PROBE_PTRACE, PROBE_MMAP_EXEC, PROBE_FORK,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(*forbidden); i++)
		assert_killed_by_sigsys(run_probe(forbidden[i], false));
}

static void
test_optional_calls_get_enosys(void **state)
{
	(void)state;
	for (int p = PROBE_CLONE3; p <= PROBE_RSEQ; p++) {
		int status = run_probe((enum probe)p, false);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

/* The metrics process lives on what a scrape needs and dies of anything a
 * worker could not do either, and of kill and UDP batches. */
static void
test_metrics_filter(void **state)
{
	static const enum probe forbidden[] = {
	    PROBE_EXECVE, PROBE_OPENAT, PROBE_SOCKET,   PROBE_PTRACE,
	    PROBE_FORK,   PROBE_KILL,   PROBE_RECVMMSG, PROBE_MMAP_EXEC,
	};
	int status = run_probe_as(SANDBOX_METRICS, PROBE_ALLOWED, false);

	(void)state;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(*forbidden); i++)
		assert_killed_by_sigsys(
		    run_probe_as(SANDBOX_METRICS, forbidden[i], false));
}

/* sandbox-violation log: the same call goes through (and is logged). */
static void
test_log_mode_does_not_kill(void **state)
{
	int status = run_probe(PROBE_OPENAT, true);

	(void)state;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Compiled here, before the forks, the filters load in each child
 * without libseccomp, and do what the ones it loads do; a child that asks
 * for the other mode (log) gets libseccomp's. Last: the prepared filters
 * stay for the rest of this process. */
static void
test_prepared_filters(void **state)
{
	static const enum probe forbidden[] = {
	    PROBE_EXECVE, PROBE_OPENAT,    PROBE_SOCKET,
	    PROBE_PTRACE, PROBE_MMAP_EXEC, PROBE_FORK,
	};
	char err[256];
	int status;

	(void)state;
	libseccomp_load_refused = true;
	/* Not prepared yet: the child's libseccomp load is refused. */
	status = run_probe(PROBE_OPENAT, false);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 100);
	assert_int_equal(
	    sandbox_prepare(SANDBOX_WORKER, false, err, sizeof(err)), 0);
	assert_int_equal(
	    sandbox_prepare(SANDBOX_METRICS, false, err, sizeof(err)), 0);
	status = run_probe(PROBE_ALLOWED, false);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(*forbidden); i++)
		assert_killed_by_sigsys(run_probe(forbidden[i], false));
	for (int p = PROBE_CLONE3; p <= PROBE_RSEQ; p++) {
		status = run_probe((enum probe)p, false);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_killed_by_sigsys(
	    run_probe_as(SANDBOX_METRICS, PROBE_RECVMMSG, false));
	/* Log mode was not prepared: libseccomp's path, refused here ... */
	status = run_probe(PROBE_OPENAT, true);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 100);
	/* ... and working once allowed. */
	libseccomp_load_refused = false;
	status = run_probe(PROBE_OPENAT, true);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compiled_rules_are_the_text),
	    cmocka_unit_test(test_loaded_filter_is_the_text),
	    cmocka_unit_test(test_allowed_calls_live),
	    cmocka_unit_test(test_forbidden_calls_die),
	    cmocka_unit_test(test_log_mode_does_not_kill),
	    cmocka_unit_test(test_optional_calls_get_enosys),
	    cmocka_unit_test(test_metrics_list_adds_nothing),
	    cmocka_unit_test(test_supervisor_filter_serves_no_metrics),
	    cmocka_unit_test(test_metrics_filter),
	    cmocka_unit_test(test_prepared_filters),
	};

	/* The probes break the rules on purpose: their violation lines are
	 * no news, and make test shows no error line when nothing failed. */
	log_set_quiet(true);
	return cmocka_run_group_tests_name("sandbox", tests, NULL, NULL);
}
