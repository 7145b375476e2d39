// Host system interfaces the Glibc module leaves out: getrandom, eventfd,
// epoll, timerfd and the TUN/TAP ioctls. Nothing KVM-specific lives here.
#ifndef CSYSTEM_H
#define CSYSTEM_H

#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <sys/uio.h>

static const unsigned long CSYSTEM_TUNSETIFF = TUNSETIFF;
static const unsigned long CSYSTEM_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ;

/// TUNSETIFF: attaches `fd` (open /dev/net/tun) to the TAP named `name`,
/// creating it if it does not exist and the caller may. Returns ioctl's result.
int csystem_attach_tap(int fd, const char *name, char *actual_name);

/// prctl(PR_SET_CHILD_SUBREAPER): orphans below this process (a container's
/// init once `runc create` exits) become its children, so it can wait for them.
int csystem_become_subreaper(void);

/// Sends `fd` over the Unix socket `socket_fd` (SCM_RIGHTS) with `name` as the
/// message, as runc hands a pseudo-terminal master to `--console-socket`. 0 or -1.
int csystem_send_fd(int socket_fd, int fd, const char *name);

/// Receives a descriptor sent that way (close-on-exec); -1 on failure.
int csystem_receive_fd(int socket_fd);

/// A new pseudo-terminal: its master and its slave, both close-on-exec. 0 or -1.
int csystem_open_pty(int *master, int *slave);

#endif
