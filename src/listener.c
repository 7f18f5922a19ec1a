/* listener: giving up listening sockets. */
#include "listener.h"
#include "counters.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

void
listener_keep_only(struct listen_set *s, unsigned worker)
{
	size_t kept = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->l[i].worker == worker ||
		    s->l[i].worker == LISTENER_SHARED)
			s->l[kept++] = s->l[i];
		else
			close(s->l[i].fd);
	}
	s->n = kept;
}

void
listener_close_all(struct listen_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		close(s->l[i].fd);
	free(s->l);
	s->l = NULL;
	s->n = 0;
}

void
listener_failed(int fd, const char *proto, const char *why)
{
	COUNT(listener_failures, 1);
	log_always(LOG_ERROR, "listener_failed",
	           "proto=%s fd=%d error=\"%s\" action=removed", proto, fd,
	           why);
}

int
listener_accept(int fd, struct sockaddr_storage *peer, enum listener_error *e)
{
	socklen_t len = sizeof(*peer);
	int cfd = accept4(fd, (struct sockaddr *)peer, &len,
	                  SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd >= 0)
		return cfd;
	switch (errno) {
	case EAGAIN:
	case EINTR:
		*e = LISTENER_EMPTY;
		break;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		*e = LISTENER_EXHAUSTED;
		break;
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
	case ETIMEDOUT:
		*e = LISTENER_TRANSIENT;
		break;
	default:
		*e = LISTENER_BROKEN;
	}
	return -1;
}

void
listener_pause(struct listener_pauses *p, struct loop *l, int fd)
{
	if (p->n < LISTENER_MAX_PAUSED) {
		p->l[p->n].fd = fd;
		p->l[p->n].events = loop_events(l, fd);
		p->n++;
		loop_del(l, fd);
	}
}

void
listener_resume(struct listener_pauses *p, struct loop *l, loop_fn fn,
                void *arg)
{
	size_t kept = 0;

	for (size_t i = 0; i < p->n; i++)
		if (loop_add(l, p->l[i].fd, p->l[i].events, fn, arg) != 0)
			p->l[kept++] = p->l[i];
	p->n = kept;
}
