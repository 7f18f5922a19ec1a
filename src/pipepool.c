/* pipepool: a fixed set of pipes, lent and taken back; nothing else. */
#include "pipepool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#define DISCARD_CHUNK 16384 /* read() size when emptying a returned pipe */

struct pipe_pool {
	struct pipe_ends *all;  /* every pipe, lent or not */
	struct pipe_ends *free; /* a stack of the ones not lent */
	unsigned count, nfree;
};

struct pipe_pool *
pipe_pool_new(unsigned count, size_t bytes)
{
	struct pipe_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->all = calloc(count ? count : 1, sizeof(*pool->all));
	pool->free = calloc(count ? count : 1, sizeof(*pool->free));
	if (pool->all == NULL || pool->free == NULL) {
		pipe_pool_free(pool);
		return NULL;
	}
	for (unsigned i = 0; i < count; i++) {
		int fds[2];

		/* Out of descriptors or over the user's pipe quota: serve
		 * with the pipes made so far (the copy path does the rest). */
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
			break;
		/* Refused past pipe-max-size or the user's pipe pages:
		 * the default size works, in smaller moves. */
		(void)fcntl(fds[1], F_SETPIPE_SZ, (int)bytes);
		pool->all[pool->count++] = (struct pipe_ends){fds[0], fds[1]};
		pool->free[pool->nfree++] = (struct pipe_ends){fds[0], fds[1]};
	}
	return pool;
}

bool
pipe_pool_take(struct pipe_pool *pool, struct pipe_ends *out)
{
	if (pool == NULL || pool->nfree == 0)
		return false;
	*out = pool->free[--pool->nfree];
	return true;
}

/* Read and drop whatever is in the pipe; false if it did not empty. */
static bool
discard(int rd)
{
	char buf[DISCARD_CHUNK];

	for (;;) {
		ssize_t n = read(rd, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
}

/* Forget a pipe for good: closed, and out of `all`. */
static void
drop(struct pipe_pool *pool, struct pipe_ends ends)
{
	for (unsigned i = 0; i < pool->count; i++) {
		if (pool->all[i].rd != ends.rd)
			continue;
		pool->all[i] = pool->all[--pool->count];
		break;
	}
	close(ends.rd);
	close(ends.wr);
}

void
pipe_pool_put(struct pipe_pool *pool, struct pipe_ends ends, size_t held)
{
	/* Never lend bytes of one connection to the next. */
	if (held > 0 && !discard(ends.rd)) {
		drop(pool, ends);
		return;
	}
	pool->free[pool->nfree++] = ends;
}

unsigned
pipe_pool_count(const struct pipe_pool *pool)
{
	return pool == NULL ? 0 : pool->count;
}

unsigned
pipe_pool_busy(const struct pipe_pool *pool)
{
	return pool == NULL ? 0 : pool->count - pool->nfree;
}

void
pipe_pool_free(struct pipe_pool *pool)
{
	if (pool == NULL)
		return;
	for (unsigned i = 0; i < pool->count; i++) {
		close(pool->all[i].rd);
		close(pool->all[i].wr);
	}
	free(pool->all);
	free(pool->free);
	free(pool);
}
