/*
 * skiff-init: PID 1 of Skiff's guest.
 *
 * Writes the "init started" boot marker and mounts /proc, /sys, /dev and /tmp.
 * Then one of two things:
 *  - `skiff run`: the VMM put a preparation in the initramfs (run_spec.h):
 *    init mounts the image's root, then waits for the hand-over (handover.h),
 *    which brings the run spec; the container's process runs (container.c).
 *  - `skiff boot`: greets with the guest's uptime, CPU count and memory, waits
 *    for the hand-over, then runs the command it brought or, without one, the
 *    command that follows "--" on the kernel command line. That is read from
 *    /proc/cmdline rather than argv: the kernel also passes every bare
 *    parameter it does not know (noxsave, say) to init's argv.
 * The hand-over is where snapshots are taken: every restore resumes there
 * with its own clock, entropy and command.
 * Either way it reports the exit status and ends by resetting the VM, which is
 * how the VMM learns that we are done.
 *
 * Kept tiny and static (musl): every instruction the guest kernel runs on its
 * behalf is expensive on an interpreting host, and so is every byte of initramfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "boot_marker.h"
#include "container.h"
#include "handover.h"
#include "run_spec.h"

static int port_fd = -2;

static void port_write(int port, int value)
{
	unsigned char byte = (unsigned char)value;

	if (port_fd == -2)
		port_fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (port_fd >= 0)
		(void)pwrite(port_fd, &byte, 1, port);
}

void skiff_marker(int code)
{
	port_write(SKIFF_MARKER_PORT, code);
}

void skiff_marker_value(int code, int value)
{
	port_write(SKIFF_MARKER_VALUE_PORT, value);
	port_write(SKIFF_MARKER_PORT, code);
}

static void mount_or_warn(const char *source, const char *target, const char *type,
			  unsigned long flags)
{
	mkdir(target, 0755);
	if (mount(source, target, type, flags, NULL) != 0 && errno != EBUSY)
		fprintf(stderr, "skiff-init: mount %s on %s: %s\n", type, target, strerror(errno));
}

static void greet(void)
{
	struct timespec up;
	struct sysinfo info;

	clock_gettime(CLOCK_BOOTTIME, &up);
	sysinfo(&info);
	unsigned long long mib = (unsigned long long)info.totalram * info.mem_unit >> 20;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("skiff-init: hello from the guest: uptime %lld.%03ld s, %ld CPU%s, %llu MiB memory\n",
	       (long long)up.tv_sec, up.tv_nsec / 1000000, cpus, cpus == 1 ? "" : "s", mib);
	fflush(stdout);
}

/*
 * Splits the text after the first standalone "--" of the kernel command line
 * into words, the way the kernel's own parser does: spaces separate, double
 * quotes group and are removed. Returns the number of words (0: no command).
 */
static int command_from_cmdline(char *line, char **words, int capacity)
{
	char *p = line;
	int count = 0;

	for (;;) {
		while (*p == ' ' || *p == '\n')
			p++;
		if (*p == '\0')
			return 0;
		if (p[0] == '-' && p[1] == '-' && (p[2] == ' ' || p[2] == '\n' || p[2] == '\0')) {
			p += 2;
			break;
		}
		int quoted = 0;
		while (*p && (quoted || (*p != ' ' && *p != '\n'))) {
			if (*p == '"')
				quoted = !quoted;
			p++;
		}
	}
	while (count < capacity - 1) {
		while (*p == ' ' || *p == '\n')
			p++;
		if (*p == '\0')
			break;
		char *out = p, *word = p;
		int quoted = 0;
		while (*p && (quoted || (*p != ' ' && *p != '\n'))) {
			if (*p == '"')
				quoted = !quoted;
			else
				*out++ = *p;
			p++;
		}
		if (*p)
			p++;
		*out = '\0';
		words[count++] = word;
	}
	words[count] = NULL;
	return count;
}

static int read_cmdline(char *buffer, size_t size)
{
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buffer, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buffer[n] = '\0';
	return 0;
}

/* Runs argv as a child and returns its status the way a shell reports it. */
static int run(char **argv)
{
	pid_t pid = fork();

	if (pid < 0) {
		fprintf(stderr, "skiff-init: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		static char *envp[] = {
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "TERM=linux", NULL,
		};
		setsid();
		skiff_marker(SKIFF_MARKER_WORKLOAD_STARTED);
		if (strchr(argv[0], '/'))
			execve(argv[0], argv, envp);
		else
			execvpe(argv[0], argv, envp);
		int err = errno;
		fprintf(stderr, "skiff-init: %s: %s\n", argv[0], strerror(err));
		_exit(err == ENOENT ? 127 : 126);
	}
	for (;;) {
		int status;
		pid_t done = wait(&status); /* as PID 1, also reaps orphans */
		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return 125;
		if (done != pid)
			continue;
		if (WIFEXITED(status))
			return WEXITSTATUS(status);
		return 128 + WTERMSIG(status);
	}
}

/* Flushes the disks, tells the VMM this reset is the planned one, resets. */
static _Noreturn void shutdown_machine(void)
{
	sync();
	skiff_marker(SKIFF_MARKER_SHUTDOWN);
	reboot(RB_AUTOBOOT);
	fprintf(stderr, "skiff-init: reboot: %s\n", strerror(errno));
	_exit(1);
}

/*
 * What a `skiff-command=1` hand-over brings: the command ("arg=" records;
 * returns their number, 0 for none) and a hostname ("hostname=", set here).
 */
static int command_from_handover(char *payload, size_t size, char **words, int capacity)
{
	int count = 0;

	if (size == 0 || strcmp(payload, "skiff-command=1") != 0)
		return 0;
	for (char *record = payload + strlen(payload) + 1; record < payload + size; record += strlen(record) + 1) {
		if (!strncmp(record, "arg=", 4) && count < capacity - 1)
			words[count++] = record + 4;
		else if (!strncmp(record, "hostname=", 9) && sethostname(record + 9, strlen(record + 9)) != 0)
			fprintf(stderr, "skiff-init: sethostname: %s\n", strerror(errno));
	}
	words[count] = NULL;
	return count;
}

/*
 * `skiff run`: root from the preparation, the rest from the hand-over. The
 * OCI runtime's guest ("attach=handover") mounts its root only after it.
 */
static int run_container(char *preparation, size_t size)
{
	char error[256];
	int attach_later;
	const char *root = run_spec_preparation(preparation, size, &attach_later);

	if (!root) {
		fprintf(stderr, "skiff-init: %s is not a run preparation\n", SKIFF_RUN_SPEC_PATH);
		return 125;
	}
	if ((attach_later ? container_open_lines() : container_prepare(root)) != 0)
		return 125;
	size_t spec_size = 0;
	char *data = handover_receive(&spec_size, error, sizeof(error));
	struct run_spec spec;
	if (!data || run_spec_parse(data, spec_size, "the run spec", &spec, error, sizeof(error)) < 0) {
		container_complain("skiff-init: %s", error);
		return 125;
	}
	if (attach_later && container_attach_root(spec.root, spec.root_size) != 0)
		return 125;
	return container_run(&spec);
}

int main(void)
{
	static char cmdline[4096];
	char *command[128];
	char error[256];
	int words = 0;

	/* The initramfs carries /dev/port, so this works before /dev is mounted. */
	skiff_marker(SKIFF_MARKER_INIT_STARTED);
	mount_or_warn("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
	mount_or_warn("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
	mount_or_warn("devtmpfs", "/dev", "devtmpfs", MS_NOSUID);

	size_t size = 0;
	char *preparation = run_spec_read(SKIFF_RUN_SPEC_PATH, &size, error, sizeof(error));
	if (preparation || error[0]) {
		int status = 125;
		if (!preparation)
			fprintf(stderr, "skiff-init: %s\n", error);
		else
			status = run_container(preparation, size);
		skiff_marker_value(SKIFF_MARKER_WORKLOAD_EXITED, status);
		shutdown_machine();
	}

	mount_or_warn("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV);
	greet();

	char *payload = handover_receive(&size, error, sizeof(error));
	if (!payload)
		fprintf(stderr, "skiff-init: %s\n", error);
	else
		words = command_from_handover(payload, size, command, 128);
	if (words == 0 && read_cmdline(cmdline, sizeof(cmdline)) == 0)
		words = command_from_cmdline(cmdline, command, 128);
	if (words > 0) {
		int status = run(command);
		skiff_marker_value(SKIFF_MARKER_WORKLOAD_EXITED, status);
		printf("skiff-init: %s exited with status %d\n", command[0], status);
		fflush(stdout);
	}
	shutdown_machine();
}
