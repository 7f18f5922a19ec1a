/*
 * tcp: echo straight out of the kernel's receive queue, by one of two paths.
 *
 * The splice path (tcp-splice-pipes > 0): splice(2) moves up to TCP_READ_CHUNK
 * from the socket into a pipe and from the pipe back into the same socket,
 * so the bytes never enter user memory (the kernel passes page references;
 * the copy path costs two copies per byte). The pipe is lent by the
 * worker's pool for that transfer only: once the socket took everything,
 * it goes back. A peer whose window is full leaves the rest in the pipe,
 * and the connection keeps it until the rest is sent; no idle connection
 * holds one.
 *
 * The copy path, when no pipe is free (counted: tcp_splice_fallbacks), when
 * the policy has none (tcp-splice-pipes 0, the default: it measured faster
 * on loopback in most load shapes) or when the kernel refuses
 * splice: a read peeks (MSG_PEEK) up to TCP_READ_CHUNK into one per-worker
 * buffer, the send takes what the peer's window allows, and only the bytes
 * sent are then consumed (MSG_TRUNC, no copy). The rest stays queued in the
 * kernel.
 *
 * Either way a peer that stops reading stops being read, and the kernel's
 * windows push back.
 */
#include "tcp.h"
#include "counters.h"
#include "guard.h"
#include "log.h"
#include "pipepool.h"
#include "slab.h"
#include "variant.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_EVENT 64 /* fairness between listeners and peers */
#define READS_PER_EVENT   8
#define TCP_READ_CHUNK    (256 * 1024) /* one peek or splice at most */
/* A pool pipe holds one transfer: TCP_READ_CHUNK in 4 KiB pages. */
#define SPLICE_PIPE_BYTES TCP_READ_CHUNK
#define SPLICE_FLAGS      (SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
#define SWEEP_MS          1000 /* lifetime checks: once a second is enough */
/* Log lines about peers, by reason: the refusals, then the evictions. */
enum { LOG_evicted_largest = TCP_NREASONS, LOG_evicted_slow };

/*
 * A connection's state. Whether the peer's window is full (`blocked`, so
 * wait for EPOLLOUT) is not a state but a condition of ECHOING; echo
 * bytes wait in the kernel's queue, not here.
 *
 *   from       event                                      to
 *   ECHOING    the source's byte rate is spent            THROTTLED
 *   THROTTLED  a tick (tokens again)                      ECHOING
 *   ECHOING    the peer's FIN (a peek returns 0)          FLUSHING
 *   ECHOING    tcp-max-bytes echoed                       SPENT
 *   SPENT      our FIN is sent                            DRAINING
 *   FLUSHING   (everything was echoed)                    closed ("eof")
 *   DRAINING   the peer closes, or an error               closed
 *   any        reset, error, idle timeout, lifetime,      closed
 *              eviction, shutdown
 */
enum conn_state {
	CONN_ECHOING,   /* reading, and echoing what it reads */
	CONN_THROTTLED, /* watched for nothing (not even EPOLLOUT) until a
	                 * tick: an EPOLLOUT watch would fire again and again */
	CONN_FLUSHING,  /* the peer sent FIN and has its whole echo: close */
	CONN_SPENT,     /* tcp-max-bytes echoed: FIN */
	CONN_DRAINING,  /* our FIN sent: discard input until the peer closes
	                 * (closing on unread input would reset the echo) */
	CONN_NSTATES
};

/* The table above, as conn_enter() enforces it (closing is conn_close). */
static const bool conn_may_enter[CONN_NSTATES][CONN_NSTATES] = {
    [CONN_ECHOING] =
        {[CONN_THROTTLED] = true, [CONN_FLUSHING] = true, [CONN_SPENT] = true},
    [CONN_THROTTLED] = {[CONN_ECHOING] = true},
    [CONN_SPENT] = {[CONN_DRAINING] = true},
};

/* Widest first, without holes, flags in bits: 10,000 idle connections
 * are 10,000 of these (120 bytes) side by side in the server's slab. */
struct conn {
	uint64_t last_active, started;
	uint64_t bytes, bytes_in;
	uint64_t window_start, window_in; /* tcp-min-rate: bytes this window */
	struct tcp_source *source; /* counted while the connection lives */
	struct conn *prev, *next;  /* idle list, least recently active first */
	struct tcp_server *srv;
	int fd;
	struct pipe_ends pipe; /* (only with has_pipe) */
	uint32_t piped;        /* bytes taken off the socket, not yet sent */
	/* The peer, formatted only for a log line (peer_name). */
	struct ipaddr peer;
	enum conn_state state : 8;
	bool blocked : 1;  /* the peer's window is full: wait for EPOLLOUT */
	bool slow : 1;     /* the last send was partial: peek tcp-buffer only */
	bool has_pipe : 1; /* a pool pipe is lent to this connection */
	bool rate_exempt : 1; /* rate-exempt source: no byte rate */
	uint16_t peer_port;
};
/* piped holds at most one transfer. */
static_assert(SPLICE_PIPE_BYTES <= UINT32_MAX, "piped is 32 bits");

struct tcp_server {
	struct loop *loop;
	const struct policy *policy;
	char *scratch;      /* TCP_READ_CHUNK bytes shared by all connections */
	struct slab *conns; /* every struct conn: max_connections of them */
	struct pipe_pool *pipes; /* the splice path's pipes; NULL: none */
	bool splice_refused;     /* the kernel said no once: copy path only */
	struct conn *oldest, *newest;
	struct listener_pauses paused; /* after EMFILE, until the tick */
	struct tcp_guard *guard; /* admission: per-source state, the cap */
	uint64_t evictions_counted;
	struct log_limit peer_log; /* refusals and evictions */
	size_t nlisteners;         /* still served: a failed one is dropped */
	size_t nthrottled;
	uint64_t last_sweep;
};

static void conn_event(struct loop *l, int fd, uint32_t events, void *arg);

/* The one way a connection changes state (conn_may_enter says which). */
static void
conn_enter(struct conn *c, enum conn_state to)
{
	assert(conn_may_enter[c->state][to]);
	if (c->state == CONN_THROTTLED)
		c->srv->nthrottled--;
	if (to == CONN_THROTTLED) {
		c->srv->nthrottled++;
		COUNT(tcp_throttled, 1);
	}
	c->state = to;
}

static void
idle_unlink(struct tcp_server *srv, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->oldest = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		srv->newest = c->prev;
	c->prev = c->next = NULL;
}

static void
idle_append(struct tcp_server *srv, struct conn *c)
{
	c->prev = srv->newest;
	c->next = NULL;
	if (srv->newest)
		srv->newest->next = c;
	else
		srv->oldest = c;
	srv->newest = c;
}

/* Progress (a byte in or out) makes a connection the most recently active. */
static void
touch(struct conn *c, uint64_t now)
{
	c->last_active = now;
	if (c->srv->newest != c) {
		idle_unlink(c->srv, c);
		idle_append(c->srv, c);
	}
}

/* "1.2.3.4:7" of the connection's peer, for a log line. */
static const char *
peer_name(const struct conn *c, char buf[ADDR_STRLEN])
{
	format_ipaddr_port(&c->peer, c->peer_port, buf, ADDR_STRLEN);
	return buf;
}

static void
conn_close(struct conn *c, const char *why)
{
	struct tcp_server *srv = c->srv;
	char peer[ADDR_STRLEN];

	log_event(LOG_DEBUG, "tcp_close", "peer=%s reason=%s bytes=%llu",
	          peer_name(c, peer), why, (unsigned long long)c->bytes);
	/* Counted before the FIN goes out: a peer that sees EOF and asks for
	 * the counters finds this connection closed. */
	COUNT(tcp_active, -1);
	COUNT(tcp_closed, 1);
	loop_del(srv->loop, c->fd);
	close(c->fd);
	idle_unlink(srv, c);
	if (c->has_pipe)
		pipe_pool_put(srv->pipes, c->pipe, c->piped);
	tcp_guard_closed(srv->guard, c->source);
	if (c->state == CONN_THROTTLED)
		srv->nthrottled--;
	slab_free(srv->conns, c);
}

/* How much may be peeked now: the chunk (tcp-buffer for a peer that is
 * not keeping up, so its wake-ups copy little), the source's byte rate,
 * the connection's byte budget. 0 means pause (or stop, at the budget). */
static size_t
read_allowance(struct conn *c, uint64_t now)
{
	const struct policy *p = c->srv->policy;
	uint64_t cap = TCP_READ_CHUNK, level;

	if (c->slow && p->tcp_buffer < cap)
		cap = p->tcp_buffer;

	if (p->tcp_max_bytes > 0 && p->tcp_max_bytes - c->bytes_in < cap)
		cap = p->tcp_max_bytes - c->bytes_in;
	level =
	    tcp_guard_allowance(c->srv->guard, c->source, c->rate_exempt, now);
	if (level < cap)
		cap = level;
	return (size_t)cap;
}

/* Send what was peeked; how much the peer's window took, or -1. */
static ssize_t
send_peeked(struct conn *c, size_t n)
{
	size_t w = 0;

	while (w < n) {
		ssize_t k = send(c->fd, c->srv->scratch + w, n - w,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			break;
		if (k < 0)
			return -1;
		w += (size_t)k;
	}
	return (ssize_t)w;
}

/* Consume n bytes already peeked and sent, without copying them again. */
static bool
consume(struct conn *c, size_t n)
{
	while (n > 0) {
		ssize_t k = recv(c->fd, NULL, n, MSG_TRUNC | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		n -= (size_t)k;
	}
	return true;
}

/* Bytes taken off the socket: what tcp-byte-rate, tcp-max-bytes and
 * tcp-min-rate count, on either path, and progress for the idle rules. */
static void
took(struct conn *c, size_t n, uint64_t now)
{
	COUNT(tcp_bytes_in, n);
	c->bytes_in += (uint64_t)n;
	c->window_in += (uint64_t)n;
	tcp_guard_charge(c->srv->guard, c->source, c->rate_exempt, now,
	                 (uint64_t)n);
	touch(c, now);
}

static void
echoed(struct conn *c, size_t n, uint64_t now)
{
	COUNT(tcp_bytes_out, n);
	c->bytes += (uint64_t)n;
	touch(c, now);
}

/* tcp-max-bytes taken and all of it echoed: FIN, then discard
 * (conn_event). */
static void
spend_budget(struct conn *c)
{
	uint64_t max = c->srv->policy->tcp_max_bytes;

	if (max > 0 && c->bytes_in >= max && c->piped == 0 &&
	    c->state == CONN_ECHOING) {
		COUNT(tcp_max_bytes_closes, 1);
		conn_enter(c, CONN_SPENT);
	}
}

/* The copy path: echo one peek's worth. */
static bool
echo_copy(struct conn *c, size_t cap, uint64_t now, bool *drained,
          const char **why)
{
	ssize_t n, w;

	n = recv(c->fd, c->srv->scratch, cap, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			*drained = errno == EAGAIN;
			return true;
		}
		*why = "read_error";
		return false;
	}
	if (n == 0) {
		conn_enter(c, CONN_FLUSHING);
		*drained = true;
		return true;
	}
	w = send_peeked(c, (size_t)n);
	if (w < 0) {
		*why = "write_error";
		return false;
	}
	if (w > 0 && !consume(c, (size_t)w)) {
		*why = "read_error";
		return false;
	}
	/* A partial send: the peer is not keeping up. Wait for room, and
	 * peek only tcp-buffer at a time until it takes a whole peek. */
	c->blocked = w < n;
	c->slow = c->blocked;
	if (w == 0)
		return true;
	took(c, (size_t)w, now);
	echoed(c, (size_t)w, now);
	spend_budget(c);
	*drained = (size_t)n < cap;
	return true;
}

/* Errors that say "not here" rather than "this connection failed": a
 * filter of an outer sandbox (EPERM, EACCES, ENOSYS) or a socket or
 * kernel without splice for it (EINVAL, EOPNOTSUPP). */
static bool
splice_refusal(int err)
{
	return err == EPERM || err == EACCES || err == ENOSYS ||
	       err == EINVAL || err == EOPNOTSUPP;
}

/* Said once per worker; from then on the copy path serves. */
static void
refuse_splice(struct tcp_server *srv, int err)
{
	if (srv->splice_refused)
		return;
	srv->splice_refused = true;
	log_always(LOG_WARN, "tcp_splice_refused",
	           "error=\"%s\" action=\"copy path from now on\"",
	           strerror(err));
}

/* A pipe for one transfer, if the pool has one (else counted). */
static bool
lend_pipe(struct conn *c)
{
	struct tcp_server *srv = c->srv;

	if (srv->pipes == NULL || srv->splice_refused)
		return false;
	if (!pipe_pool_take(srv->pipes, &c->pipe)) {
		COUNT(tcp_splice_fallbacks, 1);
		return false;
	}
	c->has_pipe = true;
	c->piped = 0;
	return true;
}

static void
return_pipe(struct conn *c)
{
	pipe_pool_put(c->srv->pipes, c->pipe, c->piped);
	c->has_pipe = false;
	c->piped = 0;
}

/* Send what waits in the connection's pipe, as much as the peer's window
 * takes; an emptied pipe goes back to the pool at once. */
static bool
flush_pipe(struct conn *c, uint64_t now, const char **why)
{
	ssize_t k;

	do
		k = splice(c->pipe.rd, NULL, c->fd, NULL, c->piped,
		           SPLICE_FLAGS);
	while (k < 0 && errno == EINTR);
	if (k < 0 && errno != EAGAIN) {
		/* The bytes in the pipe cannot go back to the socket: this
		 * connection ends, the others take the copy path. */
		if (splice_refusal(errno))
			refuse_splice(c->srv, errno);
		*why = "write_error";
		return false;
	}
	if (k > 0) {
		c->piped -= (size_t)k;
		COUNT(tcp_splice_bytes, k);
		echoed(c, (size_t)k, now);
	}
	c->blocked = c->piped > 0;
	if (c->blocked) {
		c->slow = true;
		return true;
	}
	return_pipe(c);
	spend_budget(c);
	return true;
}

/* The splice path: socket to pipe, pipe to the same socket. */
static bool
echo_splice(struct conn *c, size_t cap, uint64_t now, bool *drained,
            const char **why)
{
	ssize_t n;

	do
		n = splice(c->fd, NULL, c->pipe.wr, NULL, cap, SPLICE_FLAGS);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		int err = errno;

		return_pipe(c);
		if (n == 0) {
			conn_enter(c, CONN_FLUSHING);
			*drained = true;
			return true;
		}
		if (err == EAGAIN) {
			*drained = true;
			return true;
		}
		if (splice_refusal(err)) {
			/* Nothing was taken: the copy path serves it. */
			refuse_splice(c->srv, err);
			return echo_copy(c, cap, now, drained, why);
		}
		*why = "read_error";
		return false;
	}
	c->piped = (size_t)n;
	took(c, (size_t)n, now);
	if (!flush_pipe(c, now, why))
		return false;
	if (!c->blocked)
		c->slow = false; /* a whole transfer went */
	/* Less than asked: the queue is (almost surely) empty. A pipe that
	 * filled first leaves the socket readable, and level-triggered epoll
	 * says so again: nothing is lost, one call is saved. */
	*drained = (size_t)n < cap;
	return true;
}

/* Echo one transfer; false when the connection must close. */
static bool
echo_once(struct conn *c, bool *drained, const char **why)
{
	uint64_t now = now_ms();
	size_t cap;

	/* The rest of the last transfer goes before anything new is read:
	 * the echo stays in order, and a pipe holds one transfer. */
	if (c->has_pipe)
		return flush_pipe(c, now, why);
	cap = read_allowance(c, now);
	if (cap == 0) {
		/* Over the byte rate: the kernel's window slows the peer. */
		*drained = true;
		conn_enter(c, CONN_THROTTLED);
		return true;
	}
	if (lend_pipe(c))
		return echo_splice(c, cap, now, drained, why);
	return echo_copy(c, cap, now, drained, why);
}

/*
 * After a FIN of ours, read and discard what the peer still sends until it
 * closes: closing with unread input would send a reset, and the reset
 * would destroy the echo the peer has not read yet. The idle timeout bounds
 * it (discarded bytes are not progress).
 */
static void
drain(struct conn *c)
{
	for (int i = 0; i < READS_PER_EVENT; i++) {
		ssize_t n =
		    recv(c->fd, NULL, TCP_READ_CHUNK, MSG_TRUNC | MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_close(c, "max_bytes");
		return;
	}
}

static void
conn_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;
	const char *why = "error";

	(void)fd;
	if (c->state == CONN_DRAINING) {
		drain(c);
		return;
	}
	/* Watched for nothing while throttled, the kernel still reports a
	 * reset or hang-up: the peer is gone, do not wait for tokens. */
	if (c->state == CONN_THROTTLED && (events & (EPOLLERR | EPOLLHUP))) {
		conn_close(c, "peer_gone");
		return;
	}
	if (c->state == CONN_ECHOING &&
	    (events & (EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLERR))) {
		for (int i = 0; i < READS_PER_EVENT; i++) {
			bool drained = false;
			if (!echo_once(c, &drained, &why)) {
				conn_close(c, why);
				return;
			}
			if (c->blocked || drained || c->state != CONN_ECHOING)
				break;
		}
	}
	switch (c->state) {
	case CONN_ECHOING:
		/* Backpressure: the unsent rest waits in the kernel's queue
		 * until the peer takes its echo. */
		loop_set_events(l, c->fd, c->blocked ? EPOLLOUT : EPOLLIN);
		break;
	case CONN_THROTTLED:
		loop_set_events(l, c->fd, 0);
		break;
	case CONN_SPENT:
		shutdown(c->fd, SHUT_WR);
		conn_enter(c, CONN_DRAINING);
		loop_set_events(l, c->fd, EPOLLIN);
		break;
	case CONN_FLUSHING:
		conn_close(c, "eof");
		break;
	default:
		assert(!"DRAINING is handled above");
	}
}

static const char *
log_reason_name(unsigned r)
{
	if (r == LOG_evicted_largest)
		return "largest";
	if (r == LOG_evicted_slow)
		return "slow";
	return tcp_reason_name((enum tcp_reason)r);
}

static void
count_refusal(enum tcp_reason r)
{
	switch (r) {
#define COUNT_REASON(name)                                                     \
	case TCP_##name:                                                       \
		COUNT(tcp_refused_##name, 1);                                  \
		break;
		TCP_REFUSE_REASONS(COUNT_REASON)
#undef COUNT_REASON
	default:
		break;
	}
}

/* Close one connection of `source` to make room: the one that moved least
 * recently (the idle list is in that order). */
static void
evict_from(struct tcp_server *srv, const struct tcp_source *source)
{
	struct conn *c = srv->oldest;

	while (c != NULL && c->source != source)
		c = c->next;
	if (c == NULL)
		return;
	COUNT(tcp_evicted_largest, 1);
	if (tcp_guard_may_log(srv->guard, &srv->peer_log, LOG_evicted_largest,
	                      c->source)) {
		struct ipaddr agg;
		unsigned len =
		    tcp_guard_aggregate_prefix(srv->guard, c->source, &agg);
		char where[ADDR_STRLEN], peer[ADDR_STRLEN];

		format_ipaddr(&agg, where, sizeof(where));
		log_event(LOG_INFO, "tcp_evicted",
		          "peer=%s reason=largest aggregate=%s/%u bytes=%llu",
		          peer_name(c, peer), where, len,
		          (unsigned long long)c->bytes);
	}
	conn_close(c, "evicted_largest");
}

/*
 * The guard's decision on a new connection (its handshake is done, so the
 * source is real), applied: refused, or admitted after closing one
 * connection of the largest holder. In log-only mode the abuse checks'
 * refusals are logged and counted, not applied; the resources hold.
 */
static bool
admit(struct tcp_server *srv, const struct sockaddr *sa, const char *peer,
      struct tcp_admission *out)
{
	struct tcp_admission a;
	struct ipaddr src;

	if (!GUARDS_ON) {
		/* The bench comparison build skips the abuse checks, not the
		 * cap (a resource). */
		*out = (struct tcp_admission){.verdict = TCP_ok};
		if (tcp_guard_active(srv->guard) < tcp_guard_cap(srv->guard))
			return true;
		COUNT(tcp_refused_max, 1);
		return false;
	}
	ipaddr_from_sockaddr(sa, &src, NULL);
	tcp_guard_admit(srv->guard, &src, now_ms(), &a);
	*out = a;
	if (a.verdict != TCP_ok) {
		/* A few lines per reason and per source; the counters and
		 * the summaries carry the rest. */
		if (tcp_guard_may_log(srv->guard, &srv->peer_log, a.verdict,
		                      a.source))
			log_event(LOG_INFO,
			          a.admit ? "tcp_would_refuse" : "tcp_refused",
			          "peer=%s reason=%s", peer,
			          tcp_reason_name(a.verdict));
		if (a.admit)
			COUNT(tcp_would_refuse, 1);
		else
			count_refusal(a.verdict);
	}
	if (a.admit && a.evict != NULL)
		evict_from(srv, a.evict);
	return a.admit;
}

/* A connection for an accepted fd, watched for input, counted and
 * logged; NULL (and nothing changed) without memory or a loop slot. */
static struct conn *
conn_new(struct tcp_server *srv, int fd, const struct sockaddr *sa,
         const char *peer, const struct tcp_admission *a)
{
	struct conn *c = slab_alloc(srv->conns);

	if (c == NULL || loop_add(srv->loop, fd, EPOLLIN, conn_event, c) != 0) {
		slab_free(srv->conns, c);
		return NULL;
	}
	c->fd = fd;
	c->state = CONN_ECHOING;
	c->srv = srv;
	c->source = a->source;
	c->rate_exempt = a->rate_exempt;
	tcp_guard_opened(srv->guard, a->source);
	ipaddr_from_sockaddr(sa, &c->peer, &c->peer_port);
	c->last_active = c->started = c->window_start = now_ms();
	idle_append(srv, c);
	COUNT(tcp_accepted, 1);
	COUNT(tcp_active, 1);
	COUNT(tcp_rate_exempt, a->rate_exempt);
	log_event(LOG_DEBUG, "tcp_open", "peer=%s", peer);
	return c;
}

/* A socket shared by all workers wakes only one of them. */
static uint32_t
listener_events(const struct listener *l)
{
	return EPOLLIN | (l->worker == LISTENER_SHARED ? EPOLLEXCLUSIVE : 0);
}

/* A listener whose error would come back on every poll (EINVAL after a
 * shutdown, EPOLLERR, EPOLLHUP): stop watching it rather than spin. */
static void
drop_listener(struct tcp_server *srv, int lfd, const char *why)
{
	loop_del(srv->loop, lfd);
	srv->nlisteners--;
	listener_failed(lfd, "tcp", why);
}

static void
accept_event(struct loop *l, int lfd, uint32_t events, void *arg)
{
	struct tcp_server *srv = arg;

	if (events & (EPOLLERR | EPOLLHUP)) {
		drop_listener(srv, lfd,
		              events & EPOLLERR ? "EPOLLERR" : "EPOLLHUP");
		return;
	}
	/* On a failure: nothing queued, return; out of descriptors or
	 * memory, pause the listener until the tick; one connection's
	 * trouble, the next; the listener's own, drop it. */
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage ss;
		enum listener_error e;
		char peer[ADDR_STRLEN];
		int fd = listener_accept(lfd, &ss, &e);

		if (fd < 0) {
			if (e == LISTENER_EMPTY)
				return;
			COUNT(tcp_accept_errors, 1);
			if (e == LISTENER_EXHAUSTED) {
				log_event(LOG_WARN, "tcp_accept_paused",
				          "error=\"%s\"", strerror(errno));
				listener_pause(&srv->paused, l, lfd);
				return;
			}
			if (e == LISTENER_TRANSIENT)
				continue;
			drop_listener(srv, lfd, strerror(errno));
			return;
		}
		format_sockaddr((struct sockaddr *)&ss, peer, sizeof(peer));
		struct tcp_admission a;
		if (!admit(srv, (struct sockaddr *)&ss, peer, &a)) {
			close(fd);
			continue;
		}
		if (conn_new(srv, fd, (struct sockaddr *)&ss, peer, &a) ==
		    NULL) {
			COUNT(tcp_accept_errors, 1);
			close(fd);
		}
	}
}

/*
 * tcp-min-rate: a connection must send at least `rate` bytes in every
 * window of `period` (from its start), or it gives its slot back: a byte
 * every few seconds resets the idle timer but must not hold a slot for an
 * hour. A throttled connection is exempt (we are the ones not reading),
 * and so is one draining after tcp-max-bytes.
 */
static bool
too_slow(struct conn *c, uint64_t now)
{
	const struct bucket_cfg *min = &c->srv->policy->tcp_min_rate;
	bool slow;

	if (min->rate == 0 || now - c->window_start < min->period_ms)
		return false;
	slow = c->window_in < min->rate && c->state != CONN_THROTTLED &&
	       c->state != CONN_DRAINING;
	c->window_start = now;
	c->window_in = 0;
	return slow;
}

/* Resume throttled connections, end those past their lifetime and those
 * below tcp-min-rate. */
static void
sweep(struct tcp_server *srv, uint64_t now, bool lifetimes)
{
	uint64_t life = srv->policy->tcp_max_lifetime_ms;
	struct conn *c = srv->oldest, *next;
	char peer[ADDR_STRLEN];

	for (; c != NULL; c = next) {
		next = c->next;
		if (lifetimes && life > 0 && now - c->started >= life) {
			COUNT(tcp_lifetime_closes, 1);
			conn_close(c, "max_lifetime");
			continue;
		}
		if (lifetimes && too_slow(c, now)) {
			bool enforce = srv->policy->enforce;

			/* An abuse check: log-only counts and keeps it. */
			COUNT(tcp_evicted_slow, enforce);
			COUNT(tcp_would_evict, !enforce);
			if (tcp_guard_may_log(srv->guard, &srv->peer_log,
			                      LOG_evicted_slow, c->source))
				log_event(LOG_INFO,
				          enforce ? "tcp_evicted"
				                  : "tcp_would_evict",
				          "peer=%s reason=slow bytes_in=%llu",
				          peer_name(c, peer),
				          (unsigned long long)c->bytes_in);
			if (enforce) {
				conn_close(c, "evicted_slow");
				continue;
			}
		}
		if (c->state == CONN_THROTTLED) {
			conn_enter(c, CONN_ECHOING);
			loop_set_events(srv->loop, c->fd, EPOLLIN);
		}
	}
}

void
tcp_server_tick(struct tcp_server *srv, uint64_t now)
{
	uint64_t idle = srv->policy->tcp_idle_timeout_ms;
	bool lifetimes = now - srv->last_sweep >= SWEEP_MS;
	struct guard_stats st;

	tcp_guard_stats(srv->guard, &st);
	/* A gauge: set, not added. */
	counters->tcp_table_entries = st.entries;
	COUNT(tcp_table_evictions, st.evictions - srv->evictions_counted);
	srv->evictions_counted = st.evictions;
	log_limit_tick(&srv->peer_log, now);
	while (srv->oldest != NULL && now - srv->oldest->last_active >= idle) {
		COUNT(tcp_idle_timeouts, 1);
		conn_close(srv->oldest, "idle_timeout");
	}
	if (lifetimes)
		srv->last_sweep = now;
	if (srv->nthrottled > 0 || lifetimes)
		sweep(srv, now, lifetimes);
	listener_resume(&srv->paused, srv->loop, accept_event, srv);
	/* After the closes above: a gauge of pipes lent now. */
	counters->tcp_splice_pipes_busy = pipe_pool_busy(srv->pipes);
}

unsigned
tcp_splice_pipes(const struct policy *p, unsigned max_connections)
{
	return p->tcp_splice_pipes < max_connections ? p->tcp_splice_pipes
	                                             : max_connections;
}

unsigned long long
tcp_splice_memory(const struct policy *p, unsigned max_connections)
{
	return (unsigned long long)tcp_splice_pipes(p, max_connections) *
	       SPLICE_PIPE_BYTES;
}

/*
 * The splice path's pipes, made now, before the sandbox (which allows no
 * pipe2). Fewer pipes than asked (the fd limit, the user's pipe quota)
 * are said once; the copy path serves the rest. splice(2) cannot say
 * MSG_NOSIGNAL: a peer gone would raise SIGPIPE, which main ignores for
 * every process before it forks any.
 */
static void
open_pipes(struct tcp_server *srv, unsigned want)
{
	unsigned got;

	if (want == 0)
		return;
	srv->pipes = pipe_pool_new(want, SPLICE_PIPE_BYTES);
	got = pipe_pool_count(srv->pipes);
	if (got < want)
		log_always(LOG_WARN, "tcp_splice_pipes",
		           "pipes=%u asked=%u error=\"%s\"", got, want,
		           strerror(errno));
	if (got == 0) {
		pipe_pool_free(srv->pipes);
		srv->pipes = NULL;
	}
}

struct tcp_server *
tcp_server_new(struct loop *l, const struct policy *p,
               const struct listen_set *s, const struct facts *f,
               unsigned max_connections)
{
	struct tcp_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return NULL;
	srv->loop = l;
	srv->policy = p;
	srv->last_sweep = now_ms();
	srv->peer_log = (struct log_limit){.summary_event = "tcp_log_summary",
	                                   .name = log_reason_name,
	                                   .window_start = now_ms()};
	srv->scratch = malloc(TCP_READ_CHUNK);
	srv->guard = tcp_guard_new(p, f, max_connections);
	srv->conns = slab_new(sizeof(struct conn), max_connections);
	if (srv->scratch == NULL || srv->guard == NULL || srv->conns == NULL) {
		tcp_server_free(srv);
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (s->l[i].type != SOCK_STREAM)
			continue;
		if (loop_add(l, s->l[i].fd, listener_events(&s->l[i]),
		             accept_event, srv) != 0) {
			tcp_server_free(srv);
			return NULL;
		}
		srv->nlisteners++;
	}
	open_pipes(srv, tcp_splice_pipes(p, max_connections));
	return srv;
}

size_t
tcp_server_listeners(const struct tcp_server *srv)
{
	return srv->nlisteners;
}

void
tcp_server_free(struct tcp_server *srv)
{
	while (srv->oldest != NULL)
		conn_close(srv->oldest, "shutdown");
	tcp_guard_free(srv->guard);
	pipe_pool_free(srv->pipes);
	slab_destroy(srv->conns);
	free(srv->scratch);
	free(srv);
}

/* Besides its struct conn (in the slab): its epoll registration. */
#define CONN_KERNEL 512

unsigned long long
tcp_memory_bound(const struct policy *p, unsigned max_connections)
{
	unsigned long long per_conn = p->tcp_buffer + CONN_KERNEL;

	return max_connections * per_conn +
	       slab_bytes(sizeof(struct conn), max_connections) +
	       p->tcp_buffer + TCP_READ_CHUNK +
	       tcp_splice_memory(p, max_connections) +
	       tcp_guard_bytes(p, max_connections);
}
