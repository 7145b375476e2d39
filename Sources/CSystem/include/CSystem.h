// Host system interfaces the Glibc module leaves out: getrandom, eventfd,
// epoll, timerfd and the TUN/TAP ioctls. Nothing KVM-specific lives here.
#ifndef CSYSTEM_H
#define CSYSTEM_H

#include <linux/filter.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdbool.h>
#include <termios.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>

static const unsigned long CSYSTEM_TUNSETIFF = TUNSETIFF;
static const unsigned long CSYSTEM_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ;

/// pipe2(fds, O_CLOEXEC) (pipe2 needs _GNU_SOURCE, which the Glibc module
/// does not define). Returns pipe2's result.
int csystem_pipe_cloexec(int fds[2]);

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

/// accept4(SOCK_NONBLOCK | SOCK_CLOEXEC), which Glibc's module does not
/// export: the next client of a listening socket, or -1 (EAGAIN: none waits).
int csystem_accept_nonblocking(int listener);

/// mallopt(M_TRIM_THRESHOLD, INT_MAX): glibc's malloc never trims a heap
/// again (<malloc.h>, which Glibc's module does not export). 1 on success.
int csystem_malloc_never_trim(void);

/// mallopt(M_ARENA_MAX, 1): every thread allocates from the main arena. 1 on success.
int csystem_malloc_one_arena(void);

/// A new pseudo-terminal: its master and its slave, both close-on-exec. 0 or -1.
int csystem_open_pty(int *master, int *slave);

/// Sets no_new_privs and installs `filter` as a seccomp filter on the calling
/// thread only (threads it starts later inherit it). 0 or -errno.
int csystem_seccomp_install(const struct sock_filter *filter, unsigned short count);

/// The calling thread's seccomp mode: 0 none, 2 filter.
int csystem_seccomp_mode(void);

/// The SIGSYS handler for SECCOMP_RET_TRAP: writes "skiff: seccomp: the
/// LABEL thread made a forbidden system call, NAME (NR); the VMM stops",
/// puts the terminal back if one was made raw, and ends the whole process
/// with status 159 (128 + SIGSYS). 0 or -errno.
int csystem_seccomp_install_reporter(void);

/// The calling thread's label in that message (a string that lives for ever),
/// also its name in /proc (comm, the first 15 bytes).
void csystem_seccomp_label_thread(const char *label, bool rename);

/// The terminal settings the reporter restores (NULL: none to restore).
void csystem_seccomp_remember_terminal(const struct termios *original);

/// x86_64 system-call number to name (syscall_names.c, generated), or NULL.
const char *csystem_syscall_name(long number);

/// For tests of the filters: makes the forbidden call `call` ("execve",
/// "fork", "socket", "open") from the calling thread.
int csystem_seccomp_probe(const char *call);

/// CPUID `leaf`/`subleaf` as the host CPU (or the hypervisor beneath this
/// host) answers it to user space: eax, ebx, ecx, edx in `out`. Zeros where
/// there is no CPUID instruction (arm64).
static inline void csystem_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int out[4]) {
#if defined(__x86_64__)
    __asm__ volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(subleaf));
#else
    (void)leaf; (void)subleaf;
    out[0] = out[1] = out[2] = out[3] = 0;
#endif
}

/// The real-time signal that wakes Skiff's signal-waiting thread for work
/// of its own (SIGRTMIN + 2; KVM's vCPU kick is SIGRTMIN + 1).
static inline int csystem_wake_signal(void) { return SIGRTMIN + 2; }

/// Namespace flags for csystem_unshare (sched.h keeps them behind _GNU_SOURCE).
static const int CSYSTEM_NEWNS = 0x00020000;
static const int CSYSTEM_NEWIPC = 0x08000000;
static const int CSYSTEM_NEWNET = 0x40000000;
static const int CSYSTEM_NEWPID = 0x20000000;

/// unshare(2): 0 or -errno.
int csystem_unshare(int flags);

/// pivot_root(2): 0 or -errno.
int csystem_pivot_root(const char *new_root, const char *put_old);

/// Drops the capability bounding set, supplementary groups, then switches
/// to `gid` and `uid` (which clears the remaining capabilities) and sets
/// no_new_privs. 0 or -errno.
int csystem_drop_privileges(unsigned int uid, unsigned int gid);

/// syscall(2) with three arguments, for tests that make one exact call.
long csystem_syscall3(long number, long a, long b, long c);

/// pidfd_open(pid, 0): a file descriptor that refers to the process `pid`
/// is now, whatever later reuses the number (Linux 5.3). The fd, or -1.
int csystem_pidfd_open(int pid);

/// pidfd_send_signal(pidfd, signal, NULL, 0). 0 or -1.
int csystem_pidfd_send_signal(int pidfd, int signal);

#endif
