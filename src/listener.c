/* listener: giving up listening sockets. */
#include "listener.h"
#include "counters.h"
#include "log.h"

#include <stdlib.h>
#include <unistd.h>

void
listen_keep_only(struct listen_set *s, unsigned worker)
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
listen_close(struct listen_set *s)
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
