/* Unit tests for src/gather.c: what a worker sends reaches only its own
 * figures, in whole snapshots, and a dead worker's totals are kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "counters.h"
#include "gather.h"

#include <string.h>
#include <unistd.h>

static void
send_msg(int fd, uint32_t kind, uint64_t accepted, uint64_t active)
{
	struct counters_msg m = {.kind = kind};

	m.c.tcp_accepted = accepted;
	m.c.tcp_active = active;
	m.c.workers_ready = 1;
	assert_int_equal(write(fd, &m, sizeof(m)), sizeof(m));
}

static void
test_latest_snapshot_per_worker(void **state)
{
	struct gather *g = gather_new(2);
	int w0, w1;

	(void)state;
	assert_non_null(g);
	assert_int_equal(gather_attach(g, 0, &w0), 0);
	assert_int_equal(gather_attach(g, 1, &w1), 0);
	assert_false(gather_ready(g, 0));
	send_msg(w0, COUNTERS_UPDATE, 5, 2);
	send_msg(w0, COUNTERS_UPDATE, 7, 3);
	send_msg(w1, COUNTERS_UPDATE, 1, 1);
	assert_int_equal(gather_receive(g, 0), 0);
	assert_int_equal(gather_receive(g, 1), 0);
	assert_int_equal(gather_worker(g, 0)->tcp_accepted, 7);
	assert_int_equal(gather_worker(g, 0)->tcp_active, 3);
	assert_int_equal(gather_worker(g, 1)->tcp_accepted, 1);
	assert_true(gather_ready(g, 0) && gather_ready(g, 1));
	close(w0);
	close(w1);
	gather_free(g);
}

static void
test_garbage_stays_with_its_sender(void **state)
{
	struct gather *g = gather_new(2);
	unsigned char junk[sizeof(struct counters_msg) + 3];
	int w0, w1;

	(void)state;
	assert_int_equal(gather_attach(g, 0, &w0), 0);
	assert_int_equal(gather_attach(g, 1, &w1), 0);
	send_msg(w1, COUNTERS_UPDATE, 4, 4);
	/* Worker 0 writes bytes of the wrong kind, then a torn message. */
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(write(w0, junk, sizeof(junk)), sizeof(junk));
	gather_receive(g, 0);
	gather_receive(g, 1);
	assert_int_equal(gather_worker(g, 0)->tcp_active, 0);
	assert_int_equal(gather_worker(g, 1)->tcp_active, 4);
	assert_int_equal(gather_worker(g, 1)->tcp_accepted, 4);
	close(w0);
	close(w1);
	gather_free(g);
}

static void
test_reply_answers_request_and_eof(void **state)
{
	struct gather *g = gather_new(1);
	int w;

	(void)state;
	assert_int_equal(gather_attach(g, 0, &w), 0);
	gather_request(g, 1);
	assert_false(gather_answered(g));
	send_msg(w, COUNTERS_UPDATE, 1, 0);
	gather_receive(g, 0);
	assert_false(gather_answered(g)); /* an update is not the reply */
	send_msg(w, COUNTERS_REPLY, 2, 0);
	gather_receive(g, 0);
	assert_true(gather_answered(g));
	close(w);
	assert_int_equal(gather_receive(g, 0), 1);
	gather_free(g);
}

static void
test_retired_totals_kept_gauges_dropped(void **state)
{
	struct gather *g = gather_new(1);
	struct counters own = {0}, sum;
	int w;

	(void)state;
	own.worker_restarts = 1;
	assert_int_equal(gather_attach(g, 0, &w), 0);
	send_msg(w, COUNTERS_UPDATE, 10, 6);
	close(w);
	gather_request(g, 1);
	gather_retire(g, 0); /* reads what is left first */
	assert_true(gather_answered(g));
	assert_int_equal(gather_fd(g, 0), -1);
	assert_int_equal(gather_attach(g, 0, &w), 0);
	send_msg(w, COUNTERS_UPDATE, 3, 1);
	gather_receive(g, 0);
	gather_total(g, &own, &sum);
	assert_int_equal(sum.tcp_accepted, 13);
	assert_int_equal(sum.tcp_active, 1);
	/* Readiness is a latch, not a figure: it is never summed. */
	assert_int_equal(sum.workers_ready, 0);
	assert_true(gather_ready(g, 0));
	assert_int_equal(sum.worker_restarts, 1);
	close(w);
	gather_free(g);
}

/* The first ready snapshot latches; a later all-zero one (a compromised
 * worker's forgery) changes its figures but not the latch, and only a new
 * pipe (a new process) starts unready. */
static void
test_ready_is_latched_per_pipe(void **state)
{
	struct gather *g = gather_new(2);
	struct counters_msg zero = {.kind = COUNTERS_UPDATE};
	struct counters own = {0}, sum;
	int w, other;

	(void)state;
	assert_int_equal(gather_attach(g, 0, &w), 0);
	assert_int_equal(gather_attach(g, 1, &other), 0);
	send_msg(w, COUNTERS_UPDATE, 5, 1);
	gather_receive(g, 0);
	assert_true(gather_ready(g, 0));
	assert_false(gather_ready(g, 1));
	assert_int_equal(write(w, &zero, sizeof(zero)), sizeof(zero));
	gather_receive(g, 0);
	assert_int_equal(gather_worker(g, 0)->tcp_accepted, 0);
	assert_true(gather_ready(g, 0));
	close(w);
	gather_receive(g, 0);
	assert_true(gather_ready(g, 0)); /* reap reads it after the death */
	gather_retire(g, 0);
	assert_int_equal(gather_attach(g, 0, &w), 0);
	assert_false(gather_ready(g, 0));
	/* gather_total_except leaves out one live source, and only it. */
	send_msg(w, COUNTERS_UPDATE, 2, 0);
	send_msg(other, COUNTERS_UPDATE, 40, 0);
	gather_receive(g, 0);
	gather_receive(g, 1);
	gather_total_except(g, &own, 1, &sum);
	assert_int_equal(sum.tcp_accepted, 2);
	gather_total(g, &own, &sum);
	assert_int_equal(sum.tcp_accepted, 42);
	/* Only the sources below the count are awaited by a request. */
	gather_request(g, 1);
	send_msg(w, COUNTERS_REPLY, 2, 0);
	gather_receive(g, 0);
	assert_true(gather_answered(g));
	close(w);
	close(other);
	gather_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_latest_snapshot_per_worker),
	    cmocka_unit_test(test_garbage_stays_with_its_sender),
	    cmocka_unit_test(test_reply_answers_request_and_eof),
	    cmocka_unit_test(test_retired_totals_kept_gauges_dropped),
	    cmocka_unit_test(test_ready_is_latched_per_pipe),
	};

	return cmocka_run_group_tests_name("gather", tests, NULL, NULL);
}
