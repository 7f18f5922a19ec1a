/*
 * loop: a level-triggered epoll loop with one periodic tick, as in ae.c.
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_LOOP_H
#define ECHOD_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;

/* Called with the epoll events that fired on fd. */
typedef void (*loop_fn)(struct loop *l, int fd, uint32_t events, void *arg);
typedef void (*tick_fn)(struct loop *l, uint64_t now_ms, void *arg);

/* A loop for fds below maxfd. NULL on failure (errno set). */
struct loop *loop_new(int maxfd);

/* Bytes a loop keeps per fd it may watch: its handler and its epoll
 * event's share. */
size_t loop_fd_bytes(void);
void loop_free(struct loop *l);

/* Watch fd for events (EPOLLIN, EPOLLOUT, ...); 0 or -1 with errno. */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *arg);
int loop_set_events(struct loop *l, int fd, uint32_t events);
/* The events fd is watched for; 0 if it is not watched. */
uint32_t loop_events(const struct loop *l, int fd);
/* Forget fd (before closing it). Events already fetched for it are dropped,
 * even if the number is registered again within the same batch. */
void loop_del(struct loop *l, int fd);

/* Call tick every period_ms (and once at start) while running. */
void loop_set_tick(struct loop *l, unsigned period_ms, tick_fn fn, void *arg);

/* Dispatch until loop_stop; returns 0, or -1 if epoll_wait failed. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Block the n signals and return a signalfd (non-blocking, close-on-exec)
 * that reports them, for loop_add: signals become events. -1 with errno. */
int loop_signalfd(const int *signals, size_t n);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t now_ms(void);

#endif
