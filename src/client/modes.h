/*
 * client/modes: echo-client's four modes, chosen by -u and -n. Each
 * returns the exit status (or exits with it). They sit on net, probe,
 * stats, io and options; nothing calls them but main.
 */
#ifndef ECHO_CLIENT_MODES_H
#define ECHO_CLIENT_MODES_H

/* stdin to the server over TCP, the echo to stdout, byte for byte. */
int stream_tcp(void);
/* stdin as datagrams of at most -s bytes, each echo to stdout. */
int stream_udp(void);
/* -n timed probes on one TCP connection. */
int probe_tcp(void);
/* -n timed probes as datagrams. */
int probe_udp(void);

#endif
