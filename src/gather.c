/* gather: one pipe per worker, read by the supervisor only. */
#include "gather.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct source {
	int fd; /* read end, -1 when detached */
	bool awaited;
	bool ready;  /* latched by the first snapshot that says so */
	size_t have; /* bytes of a message read so far */
	union {
		struct counters_msg msg;
		unsigned char bytes[sizeof(struct counters_msg)];
	} partial;
	struct counters latest;
};

struct gather {
	unsigned n;
	struct counters retired;
	struct source src[];
};

struct gather *
gather_new(unsigned n)
{
	struct gather *g = calloc(1, sizeof(*g) + n * sizeof(struct source));

	if (g == NULL)
		return NULL;
	g->n = n;
	for (unsigned i = 0; i < n; i++)
		g->src[i].fd = -1;
	return g;
}

void
gather_free(struct gather *g)
{
	if (g == NULL)
		return;
	for (unsigned i = 0; i < g->n; i++)
		if (g->src[i].fd >= 0)
			close(g->src[i].fd);
	free(g);
}

int
gather_attach(struct gather *g, unsigned i, int *writer)
{
	struct source *s = &g->src[i];
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	if (s->fd >= 0)
		close(s->fd);
	memset(s, 0, sizeof(*s));
	s->fd = p[0];
	*writer = p[1];
	return 0;
}

void
gather_close_readers(struct gather *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		if (g->src[i].fd >= 0)
			close(g->src[i].fd);
		g->src[i].fd = -1;
	}
}

int
gather_fd(const struct gather *g, unsigned i)
{
	return g->src[i].fd;
}

/* A whole message arrived: a snapshot replaces the last one; its ready
 * field only ever sets the latch. */
static void
accept_message(struct source *s)
{
	const struct counters_msg *m = &s->partial.msg;

	if (m->kind != COUNTERS_UPDATE && m->kind != COUNTERS_REPLY)
		return; /* not ours: the worker is broken, keep the last */
	s->latest = m->c;
	s->ready |= s->latest.workers_ready != 0;
	s->latest.workers_ready = 0;
	if (m->kind == COUNTERS_REPLY)
		s->awaited = false;
}

int
gather_receive(struct gather *g, unsigned i)
{
	struct source *s = &g->src[i];

	while (s->fd >= 0) {
		size_t want = sizeof(s->partial) - s->have;
		ssize_t n = read(s->fd, s->partial.bytes + s->have, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 0; /* EAGAIN: all read */
		if (n == 0)
			return 1;
		s->have += (size_t)n;
		if (s->have == sizeof(s->partial)) {
			accept_message(s);
			s->have = 0;
		}
	}
	return 0;
}

void
gather_retire(struct gather *g, unsigned i)
{
	struct source *s = &g->src[i];

	gather_receive(g, i);
	s->latest.tcp_active = 0;
	s->latest.udp_table_entries = 0; /* its tables died with it */
	s->latest.tcp_table_entries = 0;
	s->latest.tcp_splice_pipes_busy = 0; /* its pipes closed with it */
	counters_add(&g->retired, &s->latest);
	memset(&s->latest, 0, sizeof(s->latest));
	s->awaited = false;
	s->ready = false;
	s->have = 0;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

void
gather_request(struct gather *g, unsigned count)
{
	for (unsigned i = 0; i < g->n; i++)
		g->src[i].awaited = i < count && g->src[i].fd >= 0;
}

bool
gather_answered(const struct gather *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->src[i].awaited)
			return false;
	return true;
}

const struct counters *
gather_worker(const struct gather *g, unsigned i)
{
	return &g->src[i].latest;
}

bool
gather_ready(const struct gather *g, unsigned i)
{
	return g->src[i].fd >= 0 && g->src[i].ready;
}

void
gather_total_except(const struct gather *g, const struct counters *own,
                    unsigned skip, struct counters *out)
{
	*out = *own;
	counters_add(out, &g->retired);
	for (unsigned i = 0; i < g->n; i++)
		if (i != skip)
			counters_add(out, &g->src[i].latest);
}

void
gather_total(const struct gather *g, const struct counters *own,
             struct counters *out)
{
	gather_total_except(g, own, g->n, out);
}
