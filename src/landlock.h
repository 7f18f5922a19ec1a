/*
 * landlock: a second, independent fence behind seccomp. Where the kernel
 * offers Landlock, a process gives up every filesystem access, TCP bind and
 * connect (ABI 4), and signals and abstract unix sockets outside its own
 * domain (ABI 6). Inherited across fork; never undone.
 * Map: bootstrap layer; calls errmsg, log.
 */
#ifndef ECHOD_LANDLOCK_H
#define ECHOD_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>

/* The kernel's Landlock ABI version, 0 if it has none (not built in, or
 * not enabled at boot). */
int landlock_abi(void);

/*
 * Restrict this process and its future children with everything the ABI
 * offers (needs no_new_privs or CAP_SYS_ADMIN). Returns the ABI applied
 * (0: none to apply), or -1 with the reason in err.
 */
int landlock_restrict(char *err, size_t errlen);

/* The supervisor's second fence behind seccomp, inherited by the workers:
 * landlock_restrict(), with the level reached in `level` ("abi7"), or
 * "none" where the kernel has no Landlock, said in one line
 * (landlock_unavailable). -1 with why in err if that is not allowed
 * (`required`: the policy's 'landlock required') or restricting failed. */
int landlock_enter(bool required, char *level, size_t levellen, char *err,
                   size_t errlen);

/* The same, but files beneath the directory dir_fd (an O_PATH descriptor)
 * stay readable: the policy reader's one grant (reader.h). */
int landlock_restrict_reading(int dir_fd, char *err, size_t errlen);

#endif
