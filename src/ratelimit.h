/*
 * ratelimit: token buckets, the fixed-size per-source table and the loop
 * guard's fixed-size hold table.
 * Map: packet-path layer; calls addr, siphash, units.
 */
#ifndef ECHOD_RATELIMIT_H
#define ECHOD_RATELIMIT_H

#include "addr.h"
#include "siphash.h"
#include "units.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tokens are kept in millitokens (x1000) so slow rates refill exactly. */
struct bucket {
	uint64_t millitokens;
	uint64_t last_ms;
};

/* Start full (burst tokens) at time now. */
void bucket_init(struct bucket *b, const struct bucket_cfg *cfg, uint64_t now);

/* Refill for the time since the last call, then take n tokens if there are
 * that many: true if taken. A clock that goes backwards refills nothing
 * (and restarts the reference); a long gap refills to burst, never more. */
bool bucket_take(struct bucket *b, const struct bucket_cfg *cfg, uint64_t now,
                 uint64_t n);

/* Tokens available now (after refill), for tests and the fuzzer. */
uint64_t bucket_level(struct bucket *b, const struct bucket_cfg *cfg,
                      uint64_t now);

/*
 * The per-source table: fixed-size, set-associative, keyed by a source
 * prefix. Each entry holds its key, the table's bookkeeping (private to
 * ratelimit.c) and `state_size` bytes of its owner's state (the guard's
 * buckets, counts and links), zeroed when the entry takes a new key. The
 * owner reaches an entry only through that state: a pointer to it is the
 * entry's handle.
 */
struct rate_table;

/* A table of `entries` slots (rounded up to a multiple of the set size),
 * allocated once, here; keys hashed with SipHash under `secret`. NULL on
 * failure. */
struct rate_table *rate_table_new(size_t entries, size_t state_size,
                                  const uint8_t secret[SIPHASH_KEY_LEN]);
void rate_table_free(struct rate_table *t);

/*
 * The state of key's entry, created if missing (zeroed, *created true).
 * A missing key takes a free slot of its set or evicts the least recently
 * seen unpinned entry (*evicted true). NULL if every slot of the set is
 * pinned: the caller refuses the source ("table pressure"). The entry's
 * last seen time becomes now.
 */
void *rate_table_get(struct rate_table *t, const struct ipaddr *key,
                     uint64_t now, bool *created, bool *evicted);

/* The state of key's entry if present (last seen untouched), else NULL. */
void *rate_table_find(struct rate_table *t, const struct ipaddr *key);

/* The key of the entry whose state this is, and when it was last seen. */
const struct ipaddr *rate_entry_key(const void *state);
uint64_t rate_entry_last_seen(const void *state);

/* Pins on an entry (open TCP connections): a pinned entry is never
 * evicted. Unpinning an unpinned entry is a caller's bug. */
void rate_entry_pin(void *state);
void rate_entry_unpin(void *state);
uint32_t rate_entry_pins(const void *state);

/* Slots that hold a source: they fill up and stay full (a new source
 * evicts an old one, nothing frees a slot). For the occupancy gauges. */
size_t rate_table_used(const struct rate_table *t);

/* Slots in the table, and bytes it holds (constant after creation). */
size_t rate_table_slots(const struct rate_table *t);
size_t rate_table_bytes(const struct rate_table *t);

/* Bytes of one slot whose owner keeps state_size bytes in it, and of a
 * whole table of `entries` such slots (what rate_table_bytes will say). */
size_t rate_table_slot_bytes(size_t state_size);
size_t rate_table_bytes_for(size_t entries, size_t state_size);

/*
 * The loop guard's table: a run of repeats and a hold per key, the key a
 * keyed hash (SipHash under a secret no sender knows) of a source, port
 * and payload, so it picks its own set. Set-associative like the rate
 * table: a new key takes the first free slot of its set, else evicts the
 * least recently seen. Compact, as every datagram probes it: the keys of
 * a set share one cache line, their last-seen times another, and their
 * entries (16 bytes) two more.
 */
struct loop_entry {
	/* A key is either in a run of repeats or held (or neither: a run
	 * of 0, never held, or held in the past); one time serves both. */
	union {
		uint64_t first_ms;         /* repeats > 0: the run began */
		uint64_t suppressed_until; /* repeats == 0: held until (ms) */
	};
	uint32_t repeats; /* times seen in the run */
};

struct loop_table;

/* A table of `entries` slots (rounded up to whole sets), allocated once. */
struct loop_table *loop_table_new(size_t entries);
void loop_table_free(struct loop_table *t);

/* key's entry, created zeroed if missing (never NULL: nothing pins a
 * slot); its last-seen time becomes now. */
struct loop_entry *loop_table_get(struct loop_table *t, uint64_t key,
                                  uint64_t now);

/* key's entry if present (last seen untouched), else NULL. */
struct loop_entry *loop_table_find(struct loop_table *t, uint64_t key);

/* Start fetching key's set into the cache (keys, times and entries), so
 * that a loop_table_get of key a little later does not wait for
 * memory. Changes nothing. */
void loop_table_prefetch(const struct loop_table *t, uint64_t key);

/* Slots in the table, and bytes it holds (constant after creation). */
size_t loop_table_slots(const struct loop_table *t);
size_t loop_table_bytes(const struct loop_table *t);
/* What loop_table_bytes will say of a table of `entries` slots. */
size_t loop_table_bytes_for(size_t entries);

#endif
