// seccomp-BPF installation and the SIGSYS reporter. The filters themselves
// are built in Swift (Seccomp target); this file holds what must be C: the
// variadic system calls and an async-signal-safe signal handler.
#include "CSystem.h"
#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

int csystem_seccomp_install(const struct sock_filter *filter, unsigned short count)
{
    struct sock_fprog program = { .len = count, .filter = (struct sock_filter *)filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) return -errno;
    return 0;
}

int csystem_seccomp_mode(void)
{
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
}

// What the reporter needs, written before any filter exists and only read
// afterwards (from the handler).
static __thread const char *thread_label = "main";
static struct termios saved_terminal;
static volatile sig_atomic_t terminal_saved;

void csystem_seccomp_label_thread(const char *label, bool rename)
{
    thread_label = label;
    if (!rename) return;
    char name[16];
    strncpy(name, label, sizeof name - 1);
    name[sizeof name - 1] = 0;
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

void csystem_seccomp_remember_terminal(const struct termios *original)
{
    if (original) {
        saved_terminal = *original;
        terminal_saved = 1;
    } else {
        terminal_saved = 0;
    }
}

static size_t append(char *buffer, size_t used, size_t size, const char *text)
{
    while (*text && used + 1 < size) buffer[used++] = *text++;
    return used;
}

static size_t append_number(char *buffer, size_t used, size_t size, long value)
{
    char digits[24];
    int count = 0;
    unsigned long magnitude = value < 0 ? (unsigned long)-value : (unsigned long)value;
    do { digits[count++] = (char)('0' + magnitude % 10); magnitude /= 10; } while (magnitude && count < 23);
    if (value < 0 && used + 1 < size) buffer[used++] = '-';
    while (count > 0 && used + 1 < size) buffer[used++] = digits[--count];
    return used;
}

static void report(int signal, siginfo_t *info, void *context)
{
    (void)signal;
    (void)context;
    char message[256];
    size_t used = 0;
    long number = info->si_syscall;
    const char *name = csystem_syscall_name(number);
    used = append(message, used, sizeof message, "skiff: seccomp: the ");
    used = append(message, used, sizeof message, thread_label);
    used = append(message, used, sizeof message, " thread made a forbidden system call, ");
    used = append(message, used, sizeof message, name ? name : "unknown");
    used = append(message, used, sizeof message, " (");
    used = append_number(message, used, sizeof message, number);
    used = append(message, used, sizeof message, "); the VMM stops\n");
    // Raw system calls only, each allowed by every filter: write, ioctl(TCSETS), exit_group.
    syscall(SYS_write, 2, message, used);
    if (terminal_saved) syscall(SYS_ioctl, 0, TCSETS, &saved_terminal);
    // The whole process, never one thread (that would leave a hung VM).
    syscall(SYS_exit_group, 128 + SIGSYS);
}

int csystem_seccomp_install_reporter(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = report;
    action.sa_flags = SA_SIGINFO;
    sigfillset(&action.sa_mask);
    return sigaction(SIGSYS, &action, NULL) == 0 ? 0 : -errno;
}

int csystem_seccomp_probe(const char *call)
{
    if (strcmp(call, "execve") == 0) {
        char *const argv[] = { "/bin/true", NULL };
        return (int)syscall(SYS_execve, "/bin/true", argv, NULL);
    }
    if (strcmp(call, "fork") == 0) return (int)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (strcmp(call, "socket") == 0) return (int)syscall(SYS_socket, 1 /* AF_UNIX */, 1 /* SOCK_STREAM */, 0);
    if (strcmp(call, "open") == 0) return (int)syscall(SYS_openat, -100 /* AT_FDCWD */, "/etc/hostname", 0);
    errno = EINVAL;
    return -1;
}

long csystem_syscall3(long number, long a, long b, long c)
{
    return syscall(number, a, b, c);
}

int csystem_pidfd_open(int pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int csystem_pidfd_send_signal(int pidfd, int signal)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}
