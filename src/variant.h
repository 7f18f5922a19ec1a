/* variant: the bench-only comparison build. `make bench` compiles echod a
 * second time, with -DECHOD_BENCH_UNGUARDED, into build/unguarded/: the
 * abuse checks and the seccomp filters are compiled out there, so their
 * cost is a ratio measured in one run. The ordinary build (the one `make`,
 * the tests and any package use) has no run-time switch for this.
 * Map: base layer; calls nothing of echod. */
#ifndef ECHOD_VARIANT_H
#define ECHOD_VARIANT_H

#ifdef ECHOD_BENCH_UNGUARDED
#define GUARDS_ON 0
#else
#define GUARDS_ON 1
#endif

#endif
