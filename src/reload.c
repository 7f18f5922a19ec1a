/* reload: a new policy in every process, or none anywhere. */
#include "reload.h"
#include "counters.h"
#include "log.h"
#include "siphash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* What goes down a worker's pipe: the whole policy, numbered. */
struct reload_msg {
	uint64_t generation;
	struct policy policy;
};

struct outbox {
	int fd;      /* the supervisor's write end; -1: no worker */
	size_t sent; /* of the current message; sizeof(msg): all of it */
};

struct reload {
	struct policy *live;
	const char *file; /* -c FILE, for the messages; NULL: built-in */
	reload_build_fn build;
	bool prefilter;
	int reader_fd;
	struct loop *loop;
	bool awaiting; /* a request is out, its reply not yet whole */
	struct reload_reply head;
	size_t got; /* bytes of head, then of text */
	char *text; /* POLICY_MAX_FILE */
	struct policy next;
	bool deferred; /* next waits for the last one to reach every worker */
	struct reload_msg msg; /* the live policy, as sent to the workers */
	unsigned n;
	struct outbox *out;
	char digest[RELOAD_DIGEST_LEN];
};

/* Keywords a reload may change: they are read on every decision. Every
 * other keyword (listen, workers, user, chroot, table sizes, prefixes and
 * their levels,
 * buffers, log, metrics, sandbox, xdp-prefilter, and any keyword not
 * listed here) was used to build what a restart alone builds again. */
static const char *const live_keywords[] = {
    "worker-restart-limit",
    "tcp-idle-timeout",
    "udp-max-datagram",
    "log-level",
    "log-format",
    "enforce",
    "allow",
    "deny",
    "rate-exempt",
    "udp-deny-source-ports",
    "udp-loop-guard",
    "udp-rate",
    "udp-byte-rate",
    "udp-global-rate",
    "tcp-max-connections-per-source",
    "tcp-connect-rate",
    "tcp-byte-rate",
    "tcp-min-rate",
    "tcp-max-lifetime",
    "tcp-max-bytes",
    "udp-aggregate-rate",
    "tcp-max-connections-per-aggregate",
    "tcp-aggregate-connect-rate",
    "embedded-ipv4",
};

bool
reload_keyword_live(const char *keyword)
{
	for (size_t i = 0; i < sizeof(live_keywords) / sizeof(live_keywords[0]);
	     i++)
		if (strcmp(live_keywords[i], keyword) == 0)
			return true;
	return false;
}

void
reload_digest_of(const struct policy *p, char out[RELOAD_DIGEST_LEN])
{
	static const uint8_t zero_key[SIPHASH_KEY_LEN];
	static char text[POLICY_PRINT_MAX];
	int n = policy_print(p, text, sizeof(text));

	snprintf(
	    out, RELOAD_DIGEST_LEN, "%016llx",
	    n < 0 ? 0ULL
	          : (unsigned long long)siphash24(zero_key, text, (size_t)n));
}

bool
reload_warn_lost_defaults(const struct policy *p)
{
	char ports[64];

	if (policy_lost_defaults(p, ports, sizeof(ports)) <= 0)
		return false;
	log_always(LOG_WARN, "policy_default_lost",
	           "keyword=udp-deny-source-ports uncovered=%s msg=\"this "
	           "policy's udp-deny-source-ports replaces the built-in list "
	           "and no longer denies the CA-1996-01 ports %s: echo, "
	           "chargen and their kind may loop through echod. Extend the "
	           "list (see policy/echod.conf) rather than replace it\"",
	           ports, ports);
	return true;
}

static bool
rule_in(const struct acl_rule *rule, const struct acl *a)
{
	for (size_t j = 0; j < a->n; j++)
		if (rule->allow == a->rules[j].allow &&
		    rule->net.prefix == a->rules[j].net.prefix &&
		    ipaddr_equal(&rule->net.addr, &a->rules[j].net.addr))
			return true;
	return false;
}

/* Does every rule of a appear in b with the same verdict? */
static bool
acl_within(const struct acl *a, const struct acl *b)
{
	for (size_t i = 0; i < a->n; i++)
		if (!rule_in(&a->rules[i], b))
			return false;
	return true;
}

/* b keeps a's rules and adds only deny rules: b denies whatever a did (a
 * denied address's longest match is a's deny rule or a longer new one). */
static bool
acl_only_adds_denials(const struct acl *a, const struct acl *b)
{
	for (size_t j = 0; j < b->n; j++)
		if (b->rules[j].allow && !rule_in(&b->rules[j], a))
			return false;
	return acl_within(a, b);
}

/* Does new let through at least as little as old, per unit of time? */
static bool
bucket_within(const struct bucket_cfg *old, const struct bucket_cfg *new_cfg)
{
	if (old->rate == 0)
		return true; /* old: unlimited, nothing was dropped for it */
	if (new_cfg->rate == 0)
		return false;
	return (unsigned __int128)new_cfg->rate * old->period_ms <=
	           (unsigned __int128)old->rate * new_cfg->period_ms &&
	       new_cfg->burst <= old->burst;
}

const char *
reload_xdp_loosens(const struct policy *old, const struct policy *new_policy)
{
	if (old->enforce && !new_policy->enforce)
		return "enforce";
	for (unsigned port = 0; port < 65536; port++)
		if (portset_has(&old->udp_deny_ports, (uint16_t)port) &&
		    !portset_has(&new_policy->udp_deny_ports, (uint16_t)port))
			return "udp-deny-source-ports";
	if (!acl_only_adds_denials(&old->acl, &new_policy->acl))
		return "allow/deny";
	if (!acl_within(&new_policy->rate_exempt, &old->rate_exempt))
		return "rate-exempt";
	if (!bucket_within(&old->udp_rate, &new_policy->udp_rate))
		return "udp-rate";
	if (!bucket_within(&old->udp_aggregate_rate,
	                   &new_policy->udp_aggregate_rate))
		return "udp-aggregate-rate";
	if (!old->embedded_ipv4_judge && new_policy->embedded_ipv4_judge)
		return "embedded-ipv4";
	if (new_policy->udp_max_datagram > old->udp_max_datagram)
		return "udp-max-datagram";
	return NULL;
}

struct reload *
reload_new(struct policy *live, unsigned nworkers, const char *file,
           int reader_fd, reload_build_fn build, bool prefilter)
{
	struct reload *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->live = live;
	r->file = file;
	r->build = build;
	r->prefilter = prefilter;
	r->reader_fd = reader_fd;
	r->n = nworkers;
	r->out = calloc(nworkers, sizeof(*r->out));
	r->text = file != NULL ? malloc(POLICY_MAX_FILE) : NULL;
	if (r->out == NULL || (file != NULL && r->text == NULL)) {
		reload_free(r);
		return NULL;
	}
	for (unsigned i = 0; i < nworkers; i++)
		r->out[i].fd = -1;
	reload_digest_of(live, r->digest);
	return r;
}

void
reload_free(struct reload *r)
{
	if (r == NULL)
		return;
	for (unsigned i = 0; r->out != NULL && i < r->n; i++)
		reload_detach(r, i);
	if (r->reader_fd >= 0)
		close(r->reader_fd);
	free(r->out);
	free(r->text);
	free(r);
}

const char *
reload_digest(const struct reload *r)
{
	return r->digest;
}

static void
refuse(const char *fmt_error)
{
	COUNT(policy_reloads_refused, 1);
	log_always(LOG_ERROR, "reload_refused",
	           "error=\"%s\" action=\"the policy in force stays\"",
	           fmt_error);
}

/* A pipe's message is sent whole before the next one starts. */
static int
delivering(const struct reload *r)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->out[i].fd >= 0 && r->out[i].sent < sizeof(r->msg))
			return (int)i;
	return -1;
}

static void
push(struct reload *r, unsigned i)
{
	struct outbox *o = &r->out[i];

	while (o->fd >= 0 && o->sent < sizeof(r->msg)) {
		ssize_t n = write(o->fd, (const char *)&r->msg + o->sent,
		                  sizeof(r->msg) - o->sent);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* the rest at the next tick */
		if (n <= 0) {
			o->sent = sizeof(r->msg); /* the worker is going */
			return;
		}
		o->sent += (size_t)n;
	}
}

/* The text built a valid policy: is it one this process may take? */
static void
decide(struct reload *r)
{
	char changed[1024], why[512];
	const char *loose;
	int n = policy_changed_keywords(r->live, &r->next, changed,
	                                sizeof(changed));
	int busy = delivering(r);

	r->deferred = false;

	if (n < 0) {
		refuse("the policy cannot be compared with the one in force");
		return;
	}
	/* The first keyword, in the table's order, that only a restart may
	 * change is the one named. */
	for (const char *k = changed; n > 0 && *k != '\0';) {
		size_t len = strcspn(k, ",");
		snprintf(why, sizeof(why), "%.*s", (int)len, k);
		if (!reload_keyword_live(why)) {
			snprintf(why, sizeof(why),
			         "'%.*s' changed and only a restart can change "
			         "it: restart to apply",
			         (int)len, k);
			refuse(why);
			return;
		}
		k += len + (k[len] == ',');
	}
	if (r->prefilter && (loose = reload_xdp_loosens(r->live, &r->next))) {
		snprintf(why, sizeof(why),
		         "'%s': the XDP prefilter, loaded with the policy in "
		         "force, would drop what this policy echoes (it may "
		         "only tighten what the prefilter checks): restart to "
		         "apply",
		         loose);
		refuse(why);
		return;
	}
	/* A worker still reading the last policy cannot be sent another
	 * half-way; the newest file is applied once it has, not refused, so
	 * an operator's quick second SIGHUP is never lost. */
	r->deferred = busy >= 0;
	if (r->deferred) {
		log_always(
		    LOG_INFO, "reload_deferred",
		    "worker=%d why=\"the last reload is still on its way "
		    "to this worker\"",
		    busy);
		return;
	}
	*r->live = r->next;
	r->msg.generation++;
	r->msg.policy = r->next;
	for (unsigned i = 0; i < r->n; i++) {
		r->out[i].sent = 0;
		push(r, i);
	}
	log_init(r->live->log_level, "main", -1);
	log_set_json(r->live->log_json);
	reload_digest_of(r->live, r->digest);
	COUNT(policy_reloads, 1);
	log_always(LOG_INFO, "reload", "digest=%s changed=%s reloads=%llu",
	           r->digest, n > 0 ? changed : "none",
	           (unsigned long long)counters->policy_reloads);
	reload_warn_lost_defaults(r->live);
}

void
reload_tick(struct reload *r)
{
	for (unsigned i = 0; i < r->n; i++)
		push(r, i);
	if (r->deferred && delivering(r) < 0)
		decide(r);
}

static void
build_and_decide(struct reload *r, const char *text, size_t len)
{
	char err[512];

	r->deferred = false; /* the newest file replaces one still waiting */
	if (r->build(text, len, &r->next, err, sizeof(err)) != 0) {
		refuse(err);
		return;
	}
	decide(r);
}

/* A whole reply: the file, or why it could not be read. */
static void
reply_in(struct reload *r)
{
	char err[512];

	r->awaiting = false;
	if (r->head.status != 0) {
		snprintf(err, sizeof(err), "%s: %.*s", r->file,
		         (int)r->head.len, r->text);
		refuse(err);
		return;
	}
	build_and_decide(r, r->text, r->head.len);
}

static void
reader_gone(struct reload *r)
{
	log_always(LOG_ERROR, "policy_reader_gone",
	           "msg=\"the policy reader ended: SIGHUP cannot reload the "
	           "policy until echod restarts\"");
	loop_del(r->loop, r->reader_fd);
	close(r->reader_fd);
	r->reader_fd = -1;
	r->awaiting = false;
}

static void
reader_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct reload *r = arg;

	(void)l;
	(void)events;
	for (;;) {
		size_t head = sizeof(r->head);
		bool in_head = r->got < head;
		size_t want =
		    in_head ? head - r->got : head + r->head.len - r->got;
		char *to = in_head ? (char *)&r->head + r->got
		                   : r->text + (r->got - head);
		ssize_t n = read(fd, to, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0 || !r->awaiting) {
			reader_gone(r); /* ended, or spoke unasked */
			return;
		}
		r->got += (size_t)n;
		if (r->got == head && r->head.len >= POLICY_MAX_FILE) {
			reader_gone(r);
			return;
		}
		if (r->got == head + r->head.len && r->got >= head) {
			r->got = 0;
			reply_in(r);
		}
	}
}

int
reload_watch(struct reload *r, struct loop *l)
{
	r->loop = l;
	if (r->reader_fd < 0)
		return 0;
	return loop_add(l, r->reader_fd, EPOLLIN, reader_event, r);
}

void
reload_begin(struct reload *r)
{
	if (r->text == NULL) {
		build_and_decide(r, NULL, 0);
		return;
	}
	if (r->awaiting)
		return; /* the reply to the last SIGHUP reads the file anew */
	if (r->reader_fd < 0 || write(r->reader_fd, "r", 1) != 1) {
		refuse("the policy reader is gone: restart to apply");
		return;
	}
	r->awaiting = true;
}

int
reload_attach(struct reload *r, unsigned i, int *worker_end)
{
	int p[2];

	reload_detach(r, i);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	r->out[i].fd = p[1];
	r->out[i].sent = sizeof(r->msg); /* it forks with the live policy */
	*worker_end = p[0];
	return 0;
}

void
reload_detach(struct reload *r, unsigned i)
{
	if (r->out[i].fd >= 0)
		close(r->out[i].fd);
	r->out[i].fd = -1;
}

void
reload_close_for_worker(struct reload *r)
{
	for (unsigned i = 0; i < r->n; i++)
		reload_detach(r, i);
	if (r->reader_fd >= 0)
		close(r->reader_fd);
	r->reader_fd = -1;
}

int
reload_receive(struct reload *r, int fd)
{
	static struct reload_msg in;
	static size_t got;
	int applied = 0;

	for (;;) {
		ssize_t n = read(fd, (char *)&in + got, sizeof(in) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return applied;
		if (n <= 0)
			return -1;
		got += (size_t)n;
		if (got == sizeof(in)) {
			*r->live = in.policy;
			got = 0;
			applied = 1;
		}
	}
}
