/*
 * bench/modes: echo-bench's modes, one file each; main picks one by name.
 * Each prints one result line of key=value pairs on stdout and returns
 * the exit status (or exits with it).
 */
#ifndef ECHO_BENCH_MODES_H
#define ECHO_BENCH_MODES_H

#include <stdbool.h>

int run_tcp(void);
int run_udp(void);
int run_rtt(bool udp);
int run_idle(void);
int run_flood(void);

#endif
