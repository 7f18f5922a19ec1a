/* counters: every decision echod makes is counted; one slot per process. */
#ifndef ECHOD_COUNTERS_H
#define ECHOD_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

/* Every counter, in the order SIGUSR1 prints them. */
#define COUNTER_LIST(X)                                                        \
	X(tcp_accepted)                                                        \
	X(tcp_active)                                                          \
	X(tcp_closed)                                                          \
	X(tcp_refused_max)                                                     \
	X(tcp_idle_timeouts)                                                   \
	X(tcp_accept_errors)                                                   \
	X(tcp_bytes_in)                                                        \
	X(tcp_bytes_out)                                                       \
	X(udp_received)                                                        \
	X(udp_echoed)                                                          \
	X(udp_bytes_in)                                                        \
	X(udp_bytes_out)                                                       \
	X(udp_drop_oversize)                                                   \
	X(udp_send_errors)                                                     \
	X(udp_drop_port)                                                       \
	X(udp_drop_bad_source)                                                 \
	X(udp_drop_bad_dest)                                                   \
	X(udp_drop_deny)                                                       \
	X(udp_drop_table)                                                      \
	X(udp_drop_loop)                                                       \
	X(udp_drop_rate)                                                       \
	X(udp_drop_global_rate)                                                \
	X(udp_would_drop)                                                      \
	X(udp_table_evictions)                                                 \
	X(tcp_refused_deny)                                                    \
	X(tcp_refused_per_source)                                              \
	X(tcp_refused_rate)                                                    \
	X(tcp_refused_table)                                                   \
	X(tcp_would_refuse)                                                    \
	X(tcp_table_evictions)                                                 \
	X(tcp_throttled)                                                       \
	X(tcp_lifetime_closes)                                                 \
	X(tcp_max_bytes_closes)                                                \
	X(worker_restarts)                                                     \
	X(workers_ready)                                                       \
	X(log_suppressed)

struct counters {
#define COUNTER_FIELD(name) uint64_t name;
	COUNTER_LIST(COUNTER_FIELD)
#undef COUNTER_FIELD
};

/* This process's slot (NULL before counters_init). The only global. */
extern struct counters *counters;

/* Single writer per slot, readers elsewhere: relaxed atomics, no lock. */
#define COUNT(name, n)                                                         \
	__atomic_store_n(&counters->name, counters->name + (uint64_t)(n),      \
	                 __ATOMIC_RELAXED)

/* Map `nslots` zeroed slots shared with future children; select slot 0. */
int counters_init(unsigned nslots);
/* Point `counters` at slot i (a worker does this after fork). */
void counters_select(unsigned slot);
/* Zero slot i's gauges (tcp_active, workers_ready) after its worker died. */
void counters_reset_gauges(unsigned slot);
/* tcp_active over every slot: the connections open in all workers. */
uint64_t counters_total_active(void);
/* Sum of every slot. */
void counters_sum(struct counters *out);
/* "name=value ..." for every counter, for one log line. */
void counters_format(const struct counters *c, char *buf, size_t len);

#endif
