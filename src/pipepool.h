/*
 * pipepool: a worker's pipes for splice(2), made before the sandbox (so the
 * worker's seccomp list needs no pipe2 or fcntl) and lent one transfer at
 * a time: a connection holds one only while echo bytes wait in it.
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_PIPEPOOL_H
#define ECHOD_PIPEPOOL_H

#include <stdbool.h>
#include <stddef.h>

struct pipe_pool;

/* One pipe lent out: read from rd, write to wr. */
struct pipe_ends {
	int rd, wr;
};

/* A pool of at most `count` non-blocking pipes of `bytes` each (the
 * kernel rounds it up to a power of two pages; a pipe it will not grow
 * keeps its default size). Fewer pipes than asked if the kernel refuses
 * some (pipe_pool_count says how many). NULL only without memory. */
struct pipe_pool *pipe_pool_new(unsigned count, size_t bytes);

/* Lend a pipe, empty; false when every pipe is out. */
bool pipe_pool_take(struct pipe_pool *pool, struct pipe_ends *out);

/* Take back a pipe that still holds `held` bytes: they are read out and
 * discarded first, so the next borrower finds it empty. A pipe that will
 * not empty is closed and the pool is one smaller. */
void pipe_pool_put(struct pipe_pool *pool, struct pipe_ends ends, size_t held);

/* Pipes in the pool, and how many are lent out now. */
unsigned pipe_pool_count(const struct pipe_pool *pool);
unsigned pipe_pool_busy(const struct pipe_pool *pool);

/* Close every pipe (lent ones too) and free the pool; NULL is fine. */
void pipe_pool_free(struct pipe_pool *pool);

#endif
