/*
 * counters: every decision echod makes is counted, by the process that
 * made it, in its own memory.
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_COUNTERS_H
#define ECHOD_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

/* Every counter, in the order SIGUSR1 prints them. The xdp_* ones are the
 * XDP prefilter's drops (stage=xdp): no process counts them; the
 * supervisor copies them from the program's map into the sum. */
#define COUNTER_LIST(X)                                                        \
	X(tcp_accepted)                                                        \
	X(tcp_active)                                                          \
	X(tcp_closed)                                                          \
	X(tcp_refused_max)                                                     \
	X(tcp_idle_timeouts)                                                   \
	X(tcp_accept_errors)                                                   \
	X(listener_failures)                                                   \
	X(tcp_bytes_in)                                                        \
	X(tcp_bytes_out)                                                       \
	X(udp_received)                                                        \
	X(udp_echoed)                                                          \
	X(udp_bytes_in)                                                        \
	X(udp_bytes_out)                                                       \
	X(udp_drop_oversize)                                                   \
	X(udp_send_errors)                                                     \
	X(udp_drop_no_packet_info)                                             \
	X(udp_drop_port)                                                       \
	X(udp_drop_bad_source)                                                 \
	X(udp_drop_bad_dest)                                                   \
	X(udp_drop_deny)                                                       \
	X(udp_drop_table)                                                      \
	X(udp_drop_loop)                                                       \
	X(udp_drop_rate)                                                       \
	X(udp_drop_aggregate_rate)                                             \
	X(udp_drop_global_rate)                                                \
	X(udp_would_drop)                                                      \
	X(udp_table_evictions)                                                 \
	X(udp_gro_buffers)                                                     \
	X(udp_gso_fallbacks)                                                   \
	X(tcp_refused_bad_source)                                              \
	X(tcp_refused_deny)                                                    \
	X(tcp_refused_per_source)                                              \
	X(tcp_refused_per_aggregate)                                           \
	X(tcp_refused_rate)                                                    \
	X(tcp_refused_aggregate_rate)                                          \
	X(tcp_refused_table)                                                   \
	X(tcp_would_refuse)                                                    \
	X(tcp_table_evictions)                                                 \
	X(udp_table_entries)                                                   \
	X(tcp_table_entries)                                                   \
	X(tcp_evicted_largest)                                                 \
	X(tcp_evicted_slow)                                                    \
	X(tcp_would_evict)                                                     \
	X(tcp_throttled)                                                       \
	X(tcp_lifetime_closes)                                                 \
	X(tcp_max_bytes_closes)                                                \
	X(udp_rate_exempt)                                                     \
	X(tcp_rate_exempt)                                                     \
	X(tcp_splice_bytes)                                                    \
	X(tcp_splice_fallbacks)                                                \
	X(tcp_splice_pipes_busy)                                               \
	X(xdp_udp_drop_port)                                                   \
	X(xdp_udp_drop_bad_source)                                             \
	X(xdp_udp_drop_bad_dest)                                               \
	X(xdp_udp_drop_deny)                                                   \
	X(xdp_udp_drop_rate)                                                   \
	X(xdp_udp_drop_aggregate_rate)                                         \
	X(xdp_tcp_drop_deny)                                                   \
	X(xdp_tcp_drop_bad_source)                                             \
	X(xdp_would_drop)                                                      \
	X(worker_restarts)                                                     \
	X(metrics_restarts)                                                    \
	X(policy_reloads)                                                      \
	X(policy_reloads_refused)                                              \
	X(workers_ready)                                                       \
	X(log_suppressed)                                                      \
	X(metrics_ok)                                                          \
	X(metrics_errors)                                                      \
	X(metrics_refused)

struct counters {
#define COUNTER_FIELD(name) uint64_t name;
	COUNTER_LIST(COUNTER_FIELD)
#undef COUNTER_FIELD
};

/* This process's own counters: private memory, never shared with another
 * process (a worker's reach the supervisor as copies, see gather.h). A
 * global, like the policy, because every module counts; it always points
 * at valid storage. */
extern struct counters *counters;

#define COUNT(name, n) (counters->name += (uint64_t)(n))

/* What a worker sends its supervisor: one whole snapshot per write(2),
 * small enough (below PIPE_BUF) for the pipe to keep it in one piece. */
enum counters_kind {
	COUNTERS_UPDATE = 1, /* changed since the last one */
	COUNTERS_REPLY = 2,  /* asked for by SIGUSR1 */
};
struct counters_msg {
	uint32_t kind;
	uint32_t pad;
	struct counters c;
};

/* Send this process's counters down fd (non-blocking); 0, or -1 if the
 * pipe is full or gone (the next update carries the same figures). */
int counters_send(int fd, enum counters_kind kind);
/* True if the counters changed since the last counters_send. */
int counters_changed(void);
/* out = a + b, counter by counter. */
void counters_add(struct counters *out, const struct counters *a);
/* "name=value ..." for every counter, for one log line. */
void counters_format(const struct counters *c, char *buf, size_t len);

#endif
