/*
 * fuzz_tcp: the TCP connection state machine (src/tcp.c) over a fake
 * socket layer and a fake event loop, through random sequences of events.
 *
 * The harness is linked with -Wl,--wrap for accept4, recv, send, shutdown,
 * close, splice, pipe2, fcntl and read (fuzz.mk): tcp.c's and pipepool.c's
 * calls land in the __wrap_ functions below, which model peers and pipes;
 * any other descriptor goes to the real call. A fake pipe holds one run of
 * one peer's stream (splice(2) fills it only when empty), and takes at most
 * FAKE_PIPE_CAP bytes per splice, as a real pipe's slots fill. The loop
 * (loop.h) is this file's own: it remembers each fd's handler and mask,
 * and the harness delivers level-triggered events as epoll would.
 *
 * Input: two header bytes, then two-byte records (op, arg).
 *   h0 bit 0: tcp-buffer 512 (else 4k); bit 1: tcp-max-bytes, 1..4096
 *     from h1; bit 2: tcp-byte-rate 2k/s burst 4k; bit 3: enforce
 *     log-only; bit 4: tcp-max-lifetime 2s; bit 5: tcp-idle-timeout 200ms
 *     (else 1h); bits 6-7: this worker's share of tcp-max-connections,
 *     1, 2, 4 or 64; h1 bits 0-1: tcp-max-connections-per-source 1, 2, 3
 *     or 256; bit 2: tcp-connect-rate 5/s burst 5; bit 3: deny
 *     198.18.0.0/24 and 2001:db8::/64, rate-table-size 64 (else 256);
 *     bits 6-7: tcp-splice-pipes 0 (the copy path alone), 1, 2 or 64
 *     (the pool is at most the share: 1 pipe for 64 connections is the
 *     pool running dry).
 *   record op % 8, on the connection `arg >> 5` (of those still open):
 *     0 a peer connects (source from arg: 198.18.0.x or 2001:db8::x);
 *     1 the peer sends (arg & 31) * 61 + 1 bytes;
 *     2 the peer reads up to (arg & 31) * 97 + 1 bytes of its echo;
 *     3 the peer shuts down its writing half (FIN);
 *     4 the peer resets (arg odd: only its reads stop: sends fail);
 *     5 the clock advances (arg * 37 ms), then tcp_server_tick;
 *     6 nothing happens (a spurious wakeup); arg odd: the next call on
 *       the connection of the kind (arg >> 1) & 3 picks (any, send, a
 *       peek, a consuming recv or splice) is interrupted (EINTR), or
 *       with arg & 8 the peer's reset arrives just before it; arg even
 *       with arg & 2: the next splice on it fails, with EPERM or EINVAL
 *       (a refusal: the copy path from then on), ENOMEM or ECONNRESET
 *       by (arg >> 2) & 3;
 *     7 arg % 8: the next accept fails (EMFILE, ECONNABORTED, ENOBUFS,
 *       ENFILE, or EINVAL: the listener is dropped), the listener
 *       reports EPOLLERR or EPOLLHUP (dropped too), or the loop has no
 *       room for the next connection (loop_add fails).
 *   After each record every ready fd gets its events until none is ready
 *   (bounded), as a level-triggered epoll would deliver them.
 * The listen set also holds a UDP socket, which tcp.c must leave alone.
 * Lines at level info go to a datagram socket the harness drains (as
 * syslog would take them), so the logging of refusals, evictions and the
 * per-window summaries runs too.
 *
 * Invariants:
 *  - what tcp.c sends a peer is exactly a prefix of what that peer sent,
 *    in order: never a byte it did not read, never one twice or reordered;
 *  - it holds no echo bytes between events but in a pipe: every byte it
 *    consumed from a queue it has sent (bytes discarded after its FIN
 *    aside) or holds in the one pipe lent to that connection, which goes
 *    back to that same connection, in order; on the copy path it consumes
 *    a byte only once it is sent (tcp.c peeks, sends, then consumes what
 *    went: MSG_PEEK, MSG_TRUNC);
 *  - no idle connection holds a pipe: between events a pipe holds bytes
 *    only for a peer whose window is full (or that is gone), and the
 *    pool's count of lent pipes is the count of pipes holding bytes; a
 *    pipe given back is emptied before it is lent again; after a refused
 *    splice, no new transfer is spliced; every pipe is closed at the end;
 *  - nothing is sent after its FIN (shutdown SHUT_WR);
 *  - each accepted descriptor is closed exactly once (at the latest by
 *    tcp_server_free), and is out of the loop when closed: no event can
 *    arrive after close; tcp.c never reads, writes or watches a
 *    descriptor that is not open;
 *  - no busy loop: after a record, events stop within SETTLE_MAX rounds
 *    (a handler that leaves a watched fd ready without progress would
 *    spin a worker);
 *  - with nothing ending it early (no limits, no reset), a peer that sent
 *    FIN and read everything is echoed everything, then closed;
 *  - tcp_server_listeners counts the TCP listener until it is dropped;
 *    tcp_server_new fails cleanly when the loop refuses the listener.
 */
#include "facts.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "tcp.h"

#include "fuzz.h"

#include "counters.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FAKE_BASE     100000 /* fake descriptors: far above real ones */
#define LISTENER_FD   FAKE_BASE
#define UDP_FD        (FAKE_BASE - 1) /* never touched: not ours */
#define MAX_CONNS     256
#define MAX_FDS       (MAX_CONNS + 1)
#define SETTLE_MAX    64 /* rounds of event delivery per record */
#define PIPE_BASE     (FAKE_BASE + 1000) /* fake pipe i: +2i read, +2i+1 write */
#define MAX_PIPES     64
#define FAKE_PIPE_CAP 2048 /* bytes one splice moves into a fake pipe */
#define PIPE_QUOTA    63   /* pipe2 fails past it, as past the user's quota */

/* One peer of a fake connection, as the harness sees it. */
struct peer {
	bool open;         /* accepted and not yet closed by tcp.c */
	bool fin, reset;   /* the peer's side */
	bool broken;       /* sends fail (EPIPE), reads still work */
	bool eintr;        /* the next call is interrupted */
	bool reset_next;   /* the reset arrives before the next call */
	unsigned fault_on; /* of that kind: enum call, or CALL_ANY */
	bool our_fin;      /* tcp.c shut down its writing half */
	uint32_t seed;     /* what the peer sends: stream_byte(seed, i) */
	uint64_t sent;     /* bytes the peer has written */
	uint64_t read;     /* bytes tcp.c has received */
	uint64_t echoed;   /* bytes tcp.c has sent back */
	uint64_t dropped;  /* read after its FIN: discarded, not held */
	uint64_t peeked;   /* the end of what tcp.c has seen (MSG_PEEK) */
	uint64_t room;     /* bytes the peer will take now */
	unsigned serial;   /* which incarnation of the fd number */
	int splice_error;  /* the next splice on it fails so, if not 0 */
	bool failed;       /* a splice failed: it may end early */
};

/* A fake pipe: one run of one peer's stream, [start, start + len). */
struct fpipe {
	bool rd_open, wr_open;
	unsigned serial; /* the peer incarnation whose bytes it holds */
	int owner;       /* that peer's index (while len > 0) */
	uint64_t start, len;
};

/* The calls a fault may wait for (op 6). */
enum call { CALL_ANY, CALL_SEND, CALL_PEEK, CALL_CONSUME };

/* The fake loop's view of one descriptor. */
struct watch {
	loop_fn fn;
	void *arg;
	uint32_t events;
	bool on;
};

static struct {
	struct peer peer[MAX_FDS]; /* index: fd - FAKE_BASE; 0 the listener */
	struct watch watch[MAX_FDS];
	unsigned serials;
	unsigned pending_accepts;
	uint8_t pending_src[MAX_CONNS];
	int accept_error;
	uint32_t listener_error; /* EPOLLERR or EPOLLHUP, once */
	bool loop_full;          /* the next loop_add fails */
	bool listener_dropped;
	uint64_t now;
	uint64_t tcp_buffer;
	int top;        /* 1 + the highest descriptor index used */
	unsigned share; /* this worker's share of tcp-max-connections */
	bool limits;    /* something may end a connection early */
	bool ticking;   /* in tcp_server_tick: closes there are limits' */
	struct loop *loop;
	struct fpipe pipe[MAX_PIPES];
	unsigned npipes;
	bool refused; /* a splice was refused: the copy path from now on */
	bool making;  /* in tcp_server_new: pipe2 is the pool's */
	unsigned pipe_quota; /* pipe2 fails once this many are made */
} w;

struct loop {
	int unused;
};

static bool
is_fake(int fd)
{
	return fd >= FAKE_BASE && fd < FAKE_BASE + MAX_FDS;
}

static uint8_t
stream_byte(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + seed) * UINT64_C(0x9e3779b97f4a7c15);

	return (uint8_t)(x >> 56);
}

/* ---------------------------------------------------------- fake loop */

uint64_t
now_ms(void)
{
	return w.now;
}

struct loop *
loop_new(int maxfd)
{
	static struct loop l;

	(void)maxfd;
	return &l;
}

void
loop_free(struct loop *l)
{
	(void)l;
}

int
loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *arg)
{
	(void)l;
	CHECK(is_fake(fd));
	CHECK(fd == LISTENER_FD || w.peer[fd - FAKE_BASE].open);
	CHECK(!w.watch[fd - FAKE_BASE].on);
	if (w.loop_full) {
		w.loop_full = false;
		errno = ENOSPC; /* epoll's max_user_watches */
		return -1;
	}
	w.watch[fd - FAKE_BASE] = (struct watch){fn, arg, events, true};
	return 0;
}

int
loop_set_events(struct loop *l, int fd, uint32_t events)
{
	(void)l;
	CHECK(is_fake(fd) && w.watch[fd - FAKE_BASE].on);
	w.watch[fd - FAKE_BASE].events = events;
	return 0;
}

uint32_t
loop_events(const struct loop *l, int fd)
{
	(void)l;
	if (!is_fake(fd) || !w.watch[fd - FAKE_BASE].on)
		return 0;
	return w.watch[fd - FAKE_BASE].events;
}

void
loop_del(struct loop *l, int fd)
{
	(void)l;
	if (is_fake(fd))
		w.watch[fd - FAKE_BASE].on = false;
}

void
loop_set_tick(struct loop *l, unsigned period_ms, tick_fn fn, void *arg)
{
	(void)l, (void)period_ms, (void)fn, (void)arg;
}

int
loop_run(struct loop *l)
{
	(void)l;
	return 0;
}

void
loop_stop(struct loop *l)
{
	(void)l;
}

/* ------------------------------------------------- fake socket layer */

int __real_accept4(int, struct sockaddr *, socklen_t *, int);
ssize_t __real_recv(int, void *, size_t, int);
ssize_t __real_send(int, const void *, size_t, int);
int __real_shutdown(int, int);
int __real_close(int);
ssize_t __real_splice(int, loff_t *, int, loff_t *, size_t, unsigned);
int __real_pipe2(int *, int);
int __real_fcntl(int, int, ...);
ssize_t __real_read(int, void *, size_t);
int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
int __wrap_shutdown(int fd, int how);
int __wrap_close(int fd);
ssize_t __wrap_splice(int in, loff_t *off_in, int out, loff_t *off_out,
                      size_t len, unsigned flags);
int __wrap_pipe2(int fds[2], int flags);
int __wrap_fcntl(int fd, int cmd, ...);
ssize_t __wrap_read(int fd, void *buf, size_t len);

/* The fake pipe of descriptor fd (either end), or NULL. */
static struct fpipe *
fake_pipe(int fd, bool *read_end)
{
	int i = fd - PIPE_BASE;

	if (i < 0 || i >= 2 * MAX_PIPES)
		return NULL;
	*read_end = (i & 1) == 0;
	return &w.pipe[i / 2];
}

static struct peer *
open_peer(int fd)
{
	struct peer *p;

	CHECK(is_fake(fd) && fd != LISTENER_FD);
	p = &w.peer[fd - FAKE_BASE];
	CHECK(p->open); /* never a descriptor it has closed */
	return p;
}

/* A fault op 6 armed for this call, applied: true if the call fails with
 * errno set (EINTR), or the peer has just reset. */
static bool
fault(struct peer *p, enum call call)
{
	if (p->fault_on != CALL_ANY && p->fault_on != call)
		return false;
	if (p->reset_next) {
		p->reset_next = false;
		p->reset = true;
		return false; /* the call sees the reset */
	}
	if (p->eintr) {
		p->eintr = false;
		errno = EINTR;
		return true;
	}
	return false;
}

/* A splice on peer p that a record asked to fail, if any: errno set. */
static bool
splice_fails(struct peer *p)
{
	int err = p->splice_error;

	if (err == 0)
		return false;
	p->splice_error = 0;
	p->failed = true;
	if (err == EPERM || err == EINVAL)
		w.refused = true;
	errno = err;
	return true;
}

/* What a read of p's queue meets before any byte: -1 with errno (a fault
 * op 6 armed, a splice failure, a reset, nothing queued), 0 at the peer's
 * FIN, 1 if bytes wait. */
static int
queue_ready(struct peer *p, enum call call, bool splicing)
{
	if (fault(p, call) || (splicing && splice_fails(p)))
		return -1;
	if (p->reset) {
		errno = ECONNRESET;
		return -1;
	}
	if (p->read == p->sent) {
		if (p->fin)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	return 1;
}

/* What a write to p meets before any byte: -1 with errno, 1 if the peer
 * takes bytes now. */
static int
window_ready(struct peer *p, bool splicing)
{
	if (fault(p, CALL_SEND) || (splicing && splice_fails(p)))
		return -1;
	if (p->reset || p->broken) {
		errno = EPIPE;
		return -1;
	}
	if (p->room == 0) {
		errno = EAGAIN;
		return -1;
	}
	return 1;
}

int
__wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	uint8_t src;
	int i;

	if (!is_fake(fd))
		return __real_accept4(fd, sa, len, flags);
	CHECK(fd == LISTENER_FD);
	if (w.accept_error != 0) {
		errno = w.accept_error;
		/* Not a resource shortage nor a transient one: the listener
		 * is broken and tcp.c stops watching it. */
		if (errno == EINVAL)
			w.listener_dropped = true;
		w.accept_error = 0;
		return -1;
	}
	if (w.pending_accepts == 0) {
		errno = EAGAIN;
		return -1;
	}
	/* The lowest free number, as the kernel does: reuse is exercised. */
	for (i = 1; i < MAX_FDS && w.peer[i].open; i++)
		;
	if (i == MAX_FDS) {
		errno = EMFILE;
		return -1;
	}
	if (i >= w.top)
		w.top = i + 1;
	src = w.pending_src[--w.pending_accepts];
	if ((unsigned)i >= w.share)
		w.limits = true; /* at the cap: a connection may be evicted */
	w.peer[i] = (struct peer){
	    .open = true, .seed = ++w.serials * 7919u, .serial = w.serials};
	if (src & 0x80) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6,
		                         .sin6_port = htons(40000 + src)};

		a.sin6_addr.s6_addr[0] = 0x20, a.sin6_addr.s6_addr[1] = 0x01;
		a.sin6_addr.s6_addr[2] = 0x0d, a.sin6_addr.s6_addr[3] = 0xb8;
		a.sin6_addr.s6_addr[7] = src & 3; /* a few /64s */
		a.sin6_addr.s6_addr[15] = src & 0x7f;
		CHECK(*len >= sizeof(a));
		memcpy(sa, &a, sizeof(a));
		*len = sizeof(a);
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons(40000 + src)};

		a.sin_addr.s_addr = htonl(0xc6120000u | (src & 3) << 8 | src);
		CHECK(*len >= sizeof(a));
		memcpy(sa, &a, sizeof(a));
		*len = sizeof(a);
	}
	return FAKE_BASE + i;
}

ssize_t
__wrap_recv(int fd, void *buf, size_t len, int flags)
{
	struct peer *p;
	size_t n;
	int r;

	if (!is_fake(fd))
		return __real_recv(fd, buf, len, flags);
	p = open_peer(fd);
	r = queue_ready(p, flags & MSG_PEEK ? CALL_PEEK : CALL_CONSUME, false);
	if (r <= 0)
		return r;
	n = p->sent - p->read < len ? (size_t)(p->sent - p->read) : len;
	if (buf != NULL && !(flags & MSG_TRUNC))
		for (size_t i = 0; i < n; i++)
			((uint8_t *)buf)[i] = stream_byte(p->seed, p->read + i);
	if (flags & MSG_PEEK) { /* copied, still queued */
		if (p->read + n > p->peeked)
			p->peeked = p->read + n;
		return (ssize_t)n;
	}
	p->read += n;
	if (p->our_fin)
		p->dropped += n; /* discarded after our FIN */
	else
		CHECK(p->read <= p->echoed); /* consumed only once echoed */
	return (ssize_t)n;
}

ssize_t
__wrap_send(int fd, const void *buf, size_t len, int flags)
{
	const uint8_t *b = buf;
	struct peer *p;
	size_t n;

	if (!is_fake(fd))
		return __real_send(fd, buf, len, flags);
	p = open_peer(fd);
	CHECK(!p->our_fin); /* nothing after our FIN */
	CHECK((flags & MSG_NOSIGNAL) != 0);
	if (window_ready(p, false) < 0)
		return -1;
	n = p->room < len ? (size_t)p->room : len;
	/* A prefix of what the peer sent: in order, each byte once, and
	 * only bytes tcp.c has read (or peeked at). */
	CHECK(p->echoed + n <= (p->peeked > p->read ? p->peeked : p->read));
	for (size_t i = 0; i < n; i++)
		CHECK(b[i] == stream_byte(p->seed, p->echoed + i));
	p->echoed += n;
	p->room -= n;
	return (ssize_t)n;
}

int
__wrap_shutdown(int fd, int how)
{
	if (!is_fake(fd))
		return __real_shutdown(fd, how);
	CHECK(how == SHUT_WR);
	open_peer(fd)->our_fin = true;
	return 0;
}

int
__wrap_close(int fd)
{
	struct peer *p;
	struct fpipe *fp;
	bool rd;

	if ((fp = fake_pipe(fd, &rd)) != NULL) {
		bool *end = rd ? &fp->rd_open : &fp->wr_open;
		CHECK(*end); /* never one it has closed */
		*end = false;
		return 0;
	}
	if (!is_fake(fd))
		return __real_close(fd);
	CHECK(fd != LISTENER_FD); /* listeners are not the server's */
	p = open_peer(fd);
	CHECK(!w.watch[fd - FAKE_BASE].on); /* no event after close */
	p->open = false;
	/* Nothing ended it early: everything was echoed before the close. */
	if (!w.limits && !w.ticking && !p->reset && !p->broken && !p->failed &&
	    p->fin && p->echoed == p->read)
		CHECK(p->read == p->sent);
	return 0;
}

/* Socket to pipe: one run of the peer's queue into an empty pipe. */
static ssize_t
splice_in(int fd, struct fpipe *fp, size_t len)
{
	struct peer *p = open_peer(fd);
	uint64_t n;
	int r;

	CHECK(!w.refused); /* refused once: the copy path from then on */
	CHECK(fp->wr_open && fp->rd_open);
	CHECK(fp->len == 0); /* a pipe holds one transfer, lent empty */
	r = queue_ready(p, CALL_CONSUME, true);
	if (r <= 0)
		return r;
	n = p->sent - p->read;
	if (n > len)
		n = len;
	if (n > FAKE_PIPE_CAP)
		n = FAKE_PIPE_CAP;
	*fp = (struct fpipe){.rd_open = true,
	                     .wr_open = true,
	                     .serial = p->serial,
	                     .owner = fd - FAKE_BASE,
	                     .start = p->read,
	                     .len = n};
	p->read += n;
	return (ssize_t)n;
}

/* Pipe to socket: the bytes go back to the peer they came from, next in
 * its echo. */
static ssize_t
splice_out(struct fpipe *fp, int fd, size_t len)
{
	struct peer *p = open_peer(fd);
	uint64_t n;

	CHECK(fp->rd_open);
	CHECK(!p->our_fin); /* nothing after our FIN */
	CHECK(fp->len > 0); /* tcp.c knows what its pipe holds */
	CHECK(fp->owner == fd - FAKE_BASE && fp->serial == p->serial);
	CHECK(fp->start == p->echoed);
	if (window_ready(p, true) < 0)
		return -1;
	n = fp->len;
	if (n > len)
		n = len;
	if (n > p->room)
		n = p->room;
	fp->start += n;
	fp->len -= n;
	p->echoed += n;
	p->room -= n;
	return (ssize_t)n;
}

ssize_t
__wrap_splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len,
              unsigned flags)
{
	struct fpipe *fp;
	bool rd;

	if (!is_fake(in) && !is_fake(out) && fake_pipe(in, &rd) == NULL &&
	    fake_pipe(out, &rd) == NULL)
		return __real_splice(in, off_in, out, off_out, len, flags);
	CHECK(off_in == NULL && off_out == NULL);
	CHECK((flags & SPLICE_F_NONBLOCK) != 0); /* never waits */
	CHECK(len > 0);
	if (is_fake(in) && (fp = fake_pipe(out, &rd)) != NULL && !rd)
		return splice_in(in, fp, len);
	if (is_fake(out) && (fp = fake_pipe(in, &rd)) != NULL && rd)
		return splice_out(fp, out, len);
	CHECK(!"splice between a connection and its pipe only");
	return -1;
}

int
__wrap_pipe2(int fds[2], int flags)
{
	struct fpipe *fp;

	if (!w.making)
		return __real_pipe2(fds, flags);
	/* Exactly what the supervisor's seccomp list allows. */
	CHECK(flags == (O_NONBLOCK | O_CLOEXEC));
	if (w.npipes == MAX_PIPES || w.npipes >= w.pipe_quota) {
		errno = EMFILE;
		return -1;
	}
	fp = &w.pipe[w.npipes];
	*fp = (struct fpipe){.rd_open = true, .wr_open = true};
	fds[0] = PIPE_BASE + 2 * (int)w.npipes;
	fds[1] = fds[0] + 1;
	w.npipes++;
	return 0;
}

int
__wrap_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;
	bool rd;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (fake_pipe(fd, &rd) == NULL)
		return __real_fcntl(fd, cmd, arg);
	CHECK(cmd == F_SETPIPE_SZ); /* the one the seccomp lists allow */
	return (int)arg;
}

/* Emptying a pipe a closed connection left bytes in. */
ssize_t
__wrap_read(int fd, void *buf, size_t len)
{
	struct fpipe *fp;
	uint64_t n;
	bool rd;

	if ((fp = fake_pipe(fd, &rd)) == NULL)
		return __real_read(fd, buf, len);
	CHECK(rd && fp->rd_open);
	if (fp->len == 0) {
		errno = EAGAIN;
		return -1;
	}
	n = fp->len < len ? fp->len : len;
	memset(buf, 0, (size_t)n);
	fp->start += n;
	fp->len -= n;
	return (ssize_t)n;
}

/* ------------------------------------------------------------ driver */

/* What a level-triggered epoll would report for fd now. */
static uint32_t
ready(int i)
{
	const struct peer *p = &w.peer[i];
	uint32_t ev = 0;

	if (i == 0)
		return w.listener_error |
		       (w.pending_accepts > 0 || w.accept_error ? EPOLLIN : 0);
	if (p->sent > p->read || p->fin || p->reset)
		ev |= EPOLLIN;
	if (p->room > 0 || p->reset)
		ev |= EPOLLOUT;
	if (p->reset)
		ev |= EPOLLERR | EPOLLHUP;
	if (p->fin && p->our_fin)
		ev |= EPOLLHUP;
	return ev;
}

/* Bytes of peer i waiting in a pipe. */
static uint64_t
in_pipes(int i)
{
	uint64_t n = 0;

	for (unsigned k = 0; k < w.npipes; k++)
		if (w.pipe[k].len > 0 && w.pipe[k].owner == i &&
		    w.pipe[k].serial == w.peer[i].serial)
			n += w.pipe[k].len;
	return n;
}

/* Between events tcp.c holds no echo byte but in pipes: what it consumed
 * from a queue (after our FIN: discards aside) it has sent or holds in a
 * pipe, and a pipe holds bytes only of a connection still open. */
static void
check_nothing_held(void)
{
	for (unsigned k = 0; k < w.npipes; k++) {
		const struct fpipe *fp = &w.pipe[k];

		if (fp->len > 0)
			CHECK(w.peer[fp->owner].open &&
			      w.peer[fp->owner].serial == fp->serial);
	}
	for (int i = 1; i < w.top; i++)
		if (w.peer[i].open)
			CHECK(w.peer[i].read - w.peer[i].dropped ==
			      w.peer[i].echoed + in_pipes(i));
}

/* Once nothing is ready: a pipe holds bytes only for a peer that takes no
 * more now (else they would have been sent): no idle connection keeps
 * one. */
static void
check_pipes_idle(void)
{
	for (unsigned k = 0; k < w.npipes; k++) {
		const struct peer *p = &w.peer[w.pipe[k].owner];

		if (w.pipe[k].len > 0)
			CHECK(p->room == 0 && !p->reset);
	}
}

/* The pool's gauge (set by the tick): a pipe is lent only while it holds
 * bytes. */
static void
check_pipes_lent(void)
{
	uint64_t holding = 0;

	for (unsigned k = 0; k < w.npipes; k++)
		holding += w.pipe[k].len > 0;
	CHECK(counters->tcp_splice_pipes_busy == holding);
}

/* Deliver events until no watched fd is ready, as epoll would. */
static void
settle(void)
{
	for (int round = 0; round < SETTLE_MAX; round++) {
		bool any = false;

		for (int i = 0; i < w.top; i++) {
			struct watch *wt = &w.watch[i];
			uint32_t ev;

			if (!wt->on)
				continue;
			ev = ready(i) & (wt->events | EPOLLERR | EPOLLHUP);
			if (ev == 0)
				continue;
			any = true;
			if (i == 0 && (ev & (EPOLLERR | EPOLLHUP)))
				w.listener_dropped = true;
			wt->fn(w.loop, FAKE_BASE + i, ev, wt->arg);
			if (i == 0)
				w.listener_error = 0;
			check_nothing_held();
		}
		if (!any) {
			check_pipes_idle();
			return;
		}
	}
	/* Still ready after SETTLE_MAX rounds with no new input: a handler
	 * that leaves its fd ready and watched without progress spins the
	 * worker (level-triggered epoll calls it again at once). */
	CHECK(!"busy loop: a watched fd stays ready");
}

/* The periodic work; what it closes, a limit closed (idle, lifetime, a
 * slow peer), not the state machine. */
static void
tick(struct tcp_server *srv)
{
	w.ticking = true;
	tcp_server_tick(srv, w.now);
	w.ticking = false;
	check_pipes_lent();
}

/* The open connection chosen by k, or -1 if there is none. */
static int
pick(unsigned k)
{
	int open[MAX_CONNS], n = 0;

	for (int i = 1; i < w.top; i++)
		if (w.peer[i].open)
			open[n++] = i;
	return n == 0 ? -1 : open[k % (unsigned)n];
}

static void
make_policy(struct policy *p, uint8_t h0, uint8_t h1)
{
	static const char *const per_source[] = {"1", "2", "3", "256"};
	static const char *const pipes[] = {"0", "1", "2", "64"};
	struct policy_error err;
	char text[1024];
	int n = 0;

	CHECK(policy_defaults(p, &err) == 0);
	n += snprintf(text + n, sizeof(text) - (size_t)n,
	              "tcp-buffer %s\ntcp-idle-timeout %s\n"
	              "tcp-max-connections-per-source %s\n"
	              "rate-table-size %s\ntcp-splice-pipes %s\n",
	              h0 & 0x01 ? "512" : "4k", h0 & 0x20 ? "200ms" : "1h",
	              per_source[h1 & 3], h1 & 0x08 ? "64" : "256",
	              pipes[h1 >> 6]);
	if (h1 & 0x08)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "deny 198.18.0.0/24 2001:db8::/64\n");
	if (h0 & 0x02)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "tcp-max-bytes %u\n", (h1 >> 3) * 131u + 1);
	if (h0 & 0x04)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "tcp-byte-rate 2k/s burst 4k\n");
	if (h0 & 0x08)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "enforce log-only\n");
	if (h0 & 0x10)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "tcp-max-lifetime 2s\n");
	if (h1 & 0x04)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "tcp-connect-rate 5/s burst 5\n");
	CHECK(policy_parse(text, (size_t)n, p, &err) == 0);
	w.tcp_buffer = p->tcp_buffer;
	/* tcp-max-bytes, the byte rate, a lifetime or idle timeout. */
	w.limits = (h0 & 0x36) != 0;
}

/* Info lines to a datagram socket of ours, as to syslog; its path is
 * gone once log.c has connected. */
static int
open_log_sink(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char err[128];
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/fuzz_tcp.%d.sock",
	         (int)getpid());
	unlink(sa.sun_path);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(log_open_syslog(sa.sun_path, err, sizeof(err)) == 0);
	unlink(sa.sun_path);
	log_init(LOG_INFO, "worker", 0);
	/* The inputs break listeners by design: a full sink must not spill
	 * their error lines onto the replay's output. */
	log_set_quiet(true);
	return fd;
}

static void
drain_log(int fd)
{
	char line[LOG_LINE_MAX * 3 + 64];

	while (recv(fd, line, sizeof(line), MSG_DONTWAIT) > 0)
		;
}

/* The pool the policy asks for, as far as the pipe quota allows; the
 * memory bound counts the pipes asked for. */
static void
check_pool(const struct policy *pol, unsigned share)
{
	unsigned want =
	    pol->tcp_splice_pipes < share ? pol->tcp_splice_pipes : share;

	CHECK(w.npipes == (want < w.pipe_quota ? want : w.pipe_quota));
	CHECK(tcp_splice_pipes(pol, share) == want);
	CHECK(tcp_splice_memory(pol, share) == (unsigned long long)want << 18);
	CHECK(tcp_memory_bound(pol, share) >=
	      tcp_splice_memory(pol, share) +
	          (unsigned long long)share * pol->tcp_buffer);
}

/* The user's pipe quota spent before the worker starts: no pipe, and the
 * copy path serves (fuzzed runs get up to PIPE_QUOTA pipes). */
static void
check_no_pipes(struct policy *pol, const struct listen_set *set)
{
	struct facts facts;
	struct tcp_server *srv;

	memset(&w, 0, sizeof(w));
	memset(&facts, 0, sizeof(facts));
	make_policy(pol, 0, 0xc0); /* tcp-splice-pipes 64 */
	w.making = true;
	srv = tcp_server_new(loop_new(0), pol, set, &facts, 4);
	w.making = false;
	CHECK(srv != NULL);
	check_pool(pol, 4);
	tcp_server_free(srv);
}

/* A loop with no room for the listener: no server, nothing left over. */
static void
check_new_fails(const struct policy *pol, const struct listen_set *set)
{
	struct facts facts;

	memset(&w, 0, sizeof(w));
	memset(&facts, 0, sizeof(facts));
	w.loop_full = true;
	CHECK(tcp_server_new(loop_new(0), pol, set, &facts, 1) == NULL);
	CHECK(!w.watch[0].on);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned shares[] = {1, 2, 4, 64};
	static const int accept_errors[] = {EMFILE, ECONNABORTED, ENOBUFS,
	                                    ENFILE, EINVAL};
	struct listener lst[2] = {{.fd = UDP_FD,
	                           .type = SOCK_DGRAM,
	                           .family = AF_INET6,
	                           .worker = LISTENER_SHARED,
	                           .name = "udp [::]:7"},
	                          {.fd = LISTENER_FD,
	                           .type = SOCK_STREAM,
	                           .family = AF_INET6,
	                           .worker = LISTENER_SHARED,
	                           .name = "tcp [::]:7"}};
	struct listen_set set = {.l = lst, .n = 2};
	struct facts facts;
	static struct policy pol;
	struct tcp_server *srv;
	static int log_fd = -1;

	if (size < 2)
		return 0;
	if (log_fd < 0) {
		log_fd = open_log_sink();
		make_policy(&pol, 0, 0);
		check_new_fails(&pol, &set);
		check_no_pipes(&pol, &set);
	}
	memset(&w, 0, sizeof(w));
	memset(&facts, 0, sizeof(facts));
	w.now = 1000000;
	w.share = shares[data[0] >> 6];
	w.top = 1;
	w.pipe_quota = PIPE_QUOTA;
	make_policy(&pol, data[0], data[1]);
	w.loop = loop_new(0);
	w.making = true;
	srv = tcp_server_new(w.loop, &pol, &set, &facts, w.share);
	w.making = false;
	CHECK(srv != NULL);
	/* The pool: the policy's pipes, at most one per connection. */
	check_pool(&pol, w.share);
	CHECK(w.watch[0].on); /* the listener is watched */
	CHECK(tcp_server_listeners(srv) == 1);

	for (size_t i = 2; i + 1 < size; i += 2) {
		uint8_t op = data[i] % 8, arg = data[i + 1];
		int c = pick(arg >> 5);
		struct peer *p = c > 0 ? &w.peer[c] : NULL;

		switch (op) {
		case 0:
			if (w.pending_accepts < MAX_CONNS)
				w.pending_src[w.pending_accepts++] = arg;
			break;
		case 1:
			if (p != NULL && !p->fin && !p->reset)
				p->sent += (arg & 31u) * 61 + 1;
			break;
		case 2:
			if (p != NULL)
				p->room += (arg & 31u) * 97 + 1;
			break;
		case 3:
			if (p != NULL)
				p->fin = true;
			break;
		case 4:
			if (p != NULL && (arg & 1))
				p->broken = true;
			else if (p != NULL)
				p->reset = true;
			break;
		case 5:
			w.now += (uint64_t)arg * 37;
			if (w.now > 1000000 + 3000000) /* near the default 1h */
				w.limits = true;       /* tcp-max-lifetime */
			tick(srv);
			break;
		case 6: {
			static const int errs[] = {EPERM, EINVAL, ENOMEM,
			                           ECONNRESET};
			if (p != NULL && (arg & 1)) {
				p->fault_on = (arg >> 1) & 3;
				if (arg & 8)
					p->reset_next = true;
				else
					p->eintr = true;
			} else if (p != NULL && (arg & 2)) {
				p->splice_error = errs[(arg >> 2) & 3];
			}
			break;
		}
		case 7:
			if (arg % 8 < 5)
				w.accept_error = accept_errors[arg % 8];
			else if (arg % 8 < 7)
				w.listener_error =
				    arg % 8 == 5 ? EPOLLERR : EPOLLHUP;
			else
				w.loop_full = true;
			break;
		}
		settle();
		drain_log(log_fd);
		CHECK(tcp_server_listeners(srv) ==
		      (w.listener_dropped ? 0u : 1u));
		/* A paused listener comes back with the tick (a later one if
		 * the loop had no room for it then). */
		if (!w.watch[0].on && w.pending_accepts > 0) {
			bool room = !w.loop_full;
			w.now += 1;
			tick(srv);
			CHECK(w.watch[0].on || w.listener_dropped || !room);
			settle();
			drain_log(log_fd);
		}
	}

	/* Without limits, a peer that sends FIN and reads everything gets
	 * its whole echo and a close. */
	if (!w.limits) {
		for (int i = 1; i < MAX_FDS; i++) {
			if (!w.peer[i].open || w.peer[i].reset ||
			    w.peer[i].broken)
				continue;
			w.peer[i].fin = true;
			w.peer[i].room = UINT64_MAX / 2;
		}
		settle();
		for (int i = 1; i < MAX_FDS; i++)
			CHECK(!w.peer[i].open || w.peer[i].reset ||
			      w.peer[i].broken);
	}
	tcp_server_free(srv);
	drain_log(log_fd);
	for (int i = 1; i < MAX_FDS; i++) {
		CHECK(!w.peer[i].open);
		CHECK(!w.watch[i].on);
	}
	for (unsigned k = 0; k < w.npipes; k++) /* no pipe leaks */
		CHECK(!w.pipe[k].rd_open && !w.pipe[k].wr_open);
	w.pending_accepts = 0;
	return 0;
}
