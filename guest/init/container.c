/*
 * `skiff run` inside the guest: root switch, identity, exec, and the relay
 * that keeps the container's stdout and stderr apart on their own serial lines.
 *
 * Without -t the container gets pipes, as under docker: programs see no
 * terminal, and init copies each pipe to its line (raw, so bytes pass as they
 * are). With -t, ttyS1 is the container's controlling terminal: the guest's
 * line discipline does echo, line editing and ^C, as a pty does under docker.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "boot_marker.h"
#include "container.h"

#define LOWER "/mnt/lower"
#define RW "/mnt/rw"
#define NEWROOT "/mnt/root"

extern char **environ;

/* Where init's own complaints go: the stderr line once it is open. */
static int diagnostics_fd = STDERR_FILENO;

void container_complain(const char *format, ...)
{
	char message[512];
	va_list args;

	va_start(args, format);
	int length = vsnprintf(message, sizeof(message) - 1, format, args);
	va_end(args);
	if (length < 0)
		return;
	if (length > (int)sizeof(message) - 2)
		length = (int)sizeof(message) - 2;
	message[length++] = '\n';
	(void)!write(diagnostics_fd, message, (size_t)length);
}

int container_write_all(int fd, const void *bytes, size_t size)
{
	const char *data = bytes;

	while (size > 0) {
		ssize_t n = write(fd, data, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		size -= (size_t)n;
	}
	return 0;
}

static void configure_line(int fd, int terminal, const struct run_spec *spec)
{
	struct termios mode;

	if (tcgetattr(fd, &mode) != 0)
		return;
	if (terminal) {
		/* Start from sane cooked settings: echo, line editing, ^C, \n → \r\n. */
		mode.c_iflag = ICRNL | IXON | IUTF8;
		mode.c_oflag = OPOST | ONLCR;
		mode.c_lflag = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN;
	} else {
		cfmakeraw(&mode);
	}
	mode.c_cflag |= CLOCAL | CREAD;
	tcsetattr(fd, TCSANOW, &mode);
	if (terminal && spec->rows && spec->columns) {
		struct winsize size = { .ws_row = spec->rows, .ws_col = spec->columns };
		ioctl(fd, TIOCSWINSZ, &size);
	}
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buffer[4096];
	size_t length = strlen(path);

	if (length >= sizeof(buffer))
		return -1;
	memcpy(buffer, path, length + 1);
	for (char *p = buffer + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buffer, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buffer, mode) == 0 || errno == EEXIST ? 0 : -1;
}

static int mount_at(const char *source, const char *target, const char *type,
		    unsigned long flags, const char *options)
{
	mkdir_p(target, 0755);
	if (mount(source, target, type, flags, options) == 0)
		return 0;
	container_complain("skiff-init: mount %s on %s: %s", source, target, strerror(errno));
	return -1;
}

/*
 * The image's disk, read-only, under a tmpfs upper layer; /proc, /sys and
 * /dev moved in from the initramfs; fresh /dev/pts, /dev/shm and /tmp.
 * Then the overlay becomes / (the initramfs stays underneath, unreachable).
 */
static int switch_to_image_root(const char *root)
{
	if (mount_at(root, LOWER, "ext4", MS_RDONLY, NULL) != 0)
		return -1;
	if (mount_at("tmpfs", RW, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
		return -1;
	mkdir(RW "/upper", 0755);
	mkdir(RW "/work", 0755);
	if (mount_at("overlay", NEWROOT, "overlay", 0,
		     "lowerdir=" LOWER ",upperdir=" RW "/upper,workdir=" RW "/work") != 0)
		return -1;
	if (mount_at("/proc", NEWROOT "/proc", NULL, MS_MOVE, NULL) != 0 ||
	    mount_at("/sys", NEWROOT "/sys", NULL, MS_MOVE, NULL) != 0 ||
	    mount_at("/dev", NEWROOT "/dev", NULL, MS_MOVE, NULL) != 0)
		return -1;
	mount_at("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "newinstance,ptmxmode=0666,mode=0620");
	mount_at("shm", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777");
	mount_at("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");

	if (chdir(NEWROOT) != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 ||
	    chroot(".") != 0 || chdir("/") != 0) {
		container_complain("skiff-init: cannot switch to the image's root: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The hostname, and /etc/hostname and /etc/hosts naming it, as docker writes them. */
static void set_hostname(const char *name)
{
	struct stat info;
	char hosts[256];

	if (!name || !*name)
		return;
	if (sethostname(name, strlen(name)) != 0)
		container_complain("skiff-init: sethostname: %s", strerror(errno));
	if (lstat("/etc", &info) != 0 || !S_ISDIR(info.st_mode))
		return;
	int fd = open("/etc/hostname", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0) {
		container_write_all(fd, name, strlen(name));
		container_write_all(fd, "\n", 1);
		close(fd);
	}
	int length = snprintf(hosts, sizeof(hosts),
			      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", name);
	fd = open("/etc/hosts", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0) {
		container_write_all(fd, hosts, (size_t)length);
		close(fd);
	}
}

void container_exec_process(const struct run_spec *spec, int in, int out, int err, int terminal)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (terminal)
		ioctl(out, TIOCSCTTY, 0);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(125);

	if (setgroups((size_t)spec->group_count, spec->groups) != 0 ||
	    setgid(spec->gid) != 0 || setuid(spec->uid) != 0) {
		fprintf(stderr, "skiff: cannot take uid %u gid %u: %s\n",
			(unsigned)spec->uid, (unsigned)spec->gid, strerror(errno));
		_exit(126);
	}
	if (chdir(spec->cwd) != 0) {
		fprintf(stderr, "skiff: chdir to cwd (\"%s\") set in config: %s\n", spec->cwd, strerror(errno));
		_exit(126);
	}
	environ = spec->envp;
	skiff_marker(SKIFF_MARKER_WORKLOAD_STARTED);
	execvp(spec->argv[0], spec->argv);

	int error = errno;
	const char *name = spec->argv[0];
	if (error == ENOENT && !strchr(name, '/'))
		fprintf(stderr, "skiff: exec: \"%s\": executable file not found in $PATH\n", name);
	else
		fprintf(stderr, "skiff: exec %s: %s\n", name, strerror(error));
	_exit(error == ENOENT || error == ENOTDIR ? 127 : 126);
}

/* Decodes host standard input (see SKIFF_STDIN_ESCAPE) into `out`. */
struct input_decoder {
	int escaped;
	int ended;
};

static size_t decode_input(struct input_decoder *decoder, const unsigned char *in, size_t count,
			   unsigned char *out)
{
	size_t produced = 0;

	for (size_t i = 0; i < count && !decoder->ended; i++) {
		if (decoder->escaped) {
			decoder->escaped = 0;
			if (in[i] == SKIFF_STDIN_EOF)
				decoder->ended = 1;
			else
				out[produced++] = in[i];
		} else if (in[i] == SKIFF_STDIN_ESCAPE) {
			decoder->escaped = 1;
		} else {
			out[produced++] = in[i];
		}
	}
	return produced;
}

/* Reads what a pipe has and copies it to its line; closes it at EOF. */
static void relay_pipe(int *pipe_fd, int line)
{
	char buffer[4096];
	ssize_t n = read(*pipe_fd, buffer, sizeof(buffer));

	if (n > 0) {
		container_write_all(line, buffer, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*pipe_fd);
		*pipe_fd = -1;
	}
}

static int out_line = -1, err_line = -1;

/* Control messages from the host on the stderr line: SKIFF_CONTROL_ESCAPE,
 * a command byte, its arguments (container.h). Bytes outside a message are dropped. */
struct control_decoder {
	int have;
	unsigned char message[6];
};

static int control_length(unsigned char command)
{
	return command == SKIFF_CONTROL_WINDOW ? 6 : 3;
}

static void control_input(struct control_decoder *decoder, pid_t process, int terminal)
{
	unsigned char raw[256];
	ssize_t n = read(err_line, raw, sizeof(raw));

	for (ssize_t i = 0; i < n; i++) {
		if (decoder->have == 0 && raw[i] != SKIFF_CONTROL_ESCAPE)
			continue;
		decoder->message[decoder->have++] = raw[i];
		if (decoder->have < 2 || decoder->have < control_length(decoder->message[1]))
			continue;
		decoder->have = 0;
		if (decoder->message[1] == SKIFF_CONTROL_WINDOW) {
			/* The terminal's new size: the kernel tells the foreground process group (SIGWINCH). */
			struct winsize size = {
				.ws_row = (unsigned short)(decoder->message[2] << 8 | decoder->message[3]),
				.ws_col = (unsigned short)(decoder->message[4] << 8 | decoder->message[5]),
			};
			if (terminal && size.ws_row && size.ws_col)
				ioctl(out_line, TIOCSWINSZ, &size);
			continue;
		}
		int signal_number = decoder->message[2];
		if (signal_number < 1 || signal_number > 64)
			continue;
		if (decoder->message[1] == SKIFF_CONTROL_SIGNAL)
			kill(process, signal_number);
		else if (decoder->message[1] == SKIFF_CONTROL_SIGNAL_ALL)
			kill(-1, signal_number); /* every process but init */
	}
}

int container_open_lines(void)
{
	out_line = open(SKIFF_STDOUT_TTY, O_RDWR | O_NOCTTY | O_CLOEXEC);
	/* Read too: the host's control messages arrive there (SKIFF_CONTROL_ESCAPE). */
	err_line = open(SKIFF_STDERR_TTY, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (out_line < 0 || err_line < 0) {
		container_complain("skiff-init: cannot open the output lines %s and %s: %s",
				   SKIFF_STDOUT_TTY, SKIFF_STDERR_TTY, strerror(errno));
		return -1;
	}
	/* Raw before anything can arrive: a control message must not be echoed. */
	configure_line(err_line, 0, NULL);
	diagnostics_fd = err_line;
	return 0;
}

int container_prepare(const char *root)
{
	return container_open_lines() != 0 ? -1 : switch_to_image_root(root);
}

/* The size in bytes /sys gives for block device `name` (vda), or 0. */
static unsigned long long block_device_size(const char *name)
{
	char path[96], text[32];
	snprintf(path, sizeof(path), "/sys/class/block/%s/size", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	return strtoull(text, NULL, 10) * 512; /* sysfs counts 512-byte sectors */
}

/*
 * The disk was attached after the guest last looked (a snapshot taken before
 * this bundle's disk existed, restored with it behind vda): the VMM raised a
 * configuration change, and the kernel takes the new capacity from a work
 * queue, so wait until it shows the size the spec names (10 s at most).
 * Then drop whatever the boot's partition scan cached of the disk that was
 * there before: the ext4 superblock lives in that first page.
 */
int container_attach_root(const char *root, unsigned long long size)
{
	const char *name = strrchr(root, '/') ? strrchr(root, '/') + 1 : root;
	unsigned long long seen = 0;

	for (int waited_ms = 0; size && (seen = block_device_size(name)) != size; waited_ms++) {
		if (waited_ms == 10000) {
			container_complain("skiff-init: %s shows %llu bytes, the spec says %llu: the disk was not attached",
					   root, seen, size);
			return -1;
		}
		struct timespec pause = { 0, 1000000 };
		nanosleep(&pause, NULL);
	}
	int fd = open(root, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, BLKFLSBUF, 0) != 0)
		container_complain("skiff-init: cannot drop %s's cached blocks: %s", root, strerror(errno));
	if (fd >= 0)
		close(fd);
	return switch_to_image_root(root);
}

/* The spec's files (bind-mounted ones, copied), after set_hostname: theirs win. */
static void write_files(const struct run_spec *spec)
{
	for (int i = 0; i < spec->file_count; i++) {
		const struct run_file *file = &spec->files[i];
		if (file->directory) {
			if (mkdir_p(file->path, file->mode) != 0 || chmod(file->path, file->mode) != 0)
				container_complain("skiff-init: cannot make the directory %s: %s", file->path, strerror(errno));
			continue;
		}
		char parent[4096];
		snprintf(parent, sizeof(parent), "%s", file->path);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = '\0';
			mkdir_p(parent, 0755);
		}
		int fd = open(file->path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, file->mode);
		if (fd < 0 || container_write_all(fd, (const char *)file->data, file->size) != 0 || fchmod(fd, file->mode) != 0)
			container_complain("skiff-init: cannot write %s: %s", file->path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

int container_run(const struct run_spec *spec)
{
	configure_line(out_line, spec->tty, spec);
	set_hostname(spec->hostname);
	write_files(spec);
	if (mkdir_p(spec->cwd, 0755) != 0)
		container_complain("skiff-init: cannot create the working directory %s: %s", spec->cwd, strerror(errno));

	/* SIGCHLD through a signalfd, so that one poll() waits for output and exits alike. */
	sigset_t child;
	sigemptyset(&child);
	sigaddset(&child, SIGCHLD);
	sigprocmask(SIG_BLOCK, &child, NULL);
	signal(SIGPIPE, SIG_IGN);
	int signals = signalfd(-1, &child, SFD_CLOEXEC | SFD_NONBLOCK);

	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, in_pipe[2] = { -1, -1 };
	int child_in, child_out, child_err;
	if (spec->tty) {
		child_in = child_out = child_err = out_line;
	} else {
		if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
		    (spec->interactive && pipe2(in_pipe, O_CLOEXEC) != 0)) {
			container_complain("skiff-init: pipe: %s", strerror(errno));
			return 125;
		}
		child_out = out_pipe[1];
		child_err = err_pipe[1];
		child_in = spec->interactive ? in_pipe[0] : open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	/* `exec` sessions while the process runs (agent.h); none without a vsock device. */
	int agent = agent_listen();
	/* The host starts sending standard input only now: the lines are set up. */
	skiff_marker(SKIFF_MARKER_CONTAINER_READY);

	pid_t pid = fork();
	if (pid < 0) {
		container_complain("skiff-init: fork: %s", strerror(errno));
		return 125;
	}
	if (pid == 0)
		container_exec_process(spec, child_in, child_out, child_err, spec->tty);

	if (!spec->tty) {
		close(out_pipe[1]);
		close(err_pipe[1]);
		close(child_in);
		if (in_pipe[1] >= 0)
			fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
	}
	int out_read = out_pipe[0], err_read = err_pipe[0], in_write = in_pipe[1];
	int read_input = !spec->tty && spec->interactive;
	struct input_decoder decoder = { 0, 0 };
	unsigned char pending[4096];
	size_t pending_count = 0;
	int status = -1;
	struct control_decoder control = { 0, { 0 } };

	/* Until the process has exited and both pipes are drained. */
	while (status < 0 || out_read >= 0 || err_read >= 0) {
		struct pollfd polls[6];
		int count = 0, at_out = -1, at_err = -1, at_in = -1, at_signals, at_control = -1, at_agent = -1;

		if (out_read >= 0) { at_out = count; polls[count++] = (struct pollfd){ out_read, POLLIN, 0 }; }
		if (err_read >= 0) { at_err = count; polls[count++] = (struct pollfd){ err_read, POLLIN, 0 }; }
		if (in_write >= 0 && pending_count > 0) {
			at_in = count; polls[count++] = (struct pollfd){ in_write, POLLOUT, 0 };
		} else if (in_write >= 0 && read_input && !decoder.ended) {
			at_in = count; polls[count++] = (struct pollfd){ out_line, POLLIN, 0 };
		}
		at_signals = count;
		polls[count++] = (struct pollfd){ signals, POLLIN, 0 };
		if (status < 0) {
			at_control = count;
			polls[count++] = (struct pollfd){ err_line, POLLIN, 0 };
		}
		if (status < 0 && agent >= 0) {
			at_agent = count;
			polls[count++] = (struct pollfd){ agent, POLLIN, 0 };
		}

		if (poll(polls, (nfds_t)count, -1) < 0) {
			if (errno == EINTR)
				continue;
			container_complain("skiff-init: poll: %s", strerror(errno));
			break;
		}
		if (at_out >= 0 && polls[at_out].revents)
			relay_pipe(&out_read, out_line);
		if (at_err >= 0 && polls[at_err].revents)
			relay_pipe(&err_read, err_line);
		if (at_control >= 0 && polls[at_control].revents)
			control_input(&control, pid, spec->tty);
		if (at_agent >= 0 && polls[at_agent].revents) {
			/* The session must not hold the process's pipes or init's lines. */
			int inherited[] = { out_read, err_read, in_write, signals };
			agent_accept(agent, inherited, 4);
		}
		if (at_in >= 0 && polls[at_in].revents) {
			if (pending_count > 0) {
				ssize_t n = write(in_write, pending, pending_count);
				if (n > 0) {
					memmove(pending, pending + n, pending_count - (size_t)n);
					pending_count -= (size_t)n;
				} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
					pending_count = 0; /* the process closed its stdin: drop the rest */
					decoder.ended = 1;
				}
			} else {
				unsigned char raw[2048];
				ssize_t n = read(out_line, raw, sizeof(raw));
				if (n > 0)
					pending_count = decode_input(&decoder, raw, (size_t)n, pending);
			}
		}
		if (in_write >= 0 && decoder.ended && pending_count == 0) {
			close(in_write); /* the process reads EOF */
			in_write = -1;
		}
		if (polls[at_signals].revents) {
			struct signalfd_siginfo info;
			while (read(signals, &info, sizeof(info)) > 0) {
			}
			int child_status;
			pid_t done;
			while ((done = waitpid(-1, &child_status, WNOHANG)) > 0) {
				if (done != pid)
					continue; /* an orphan PID 1 adopted */
				status = WIFEXITED(child_status) ? WEXITSTATUS(child_status)
								 : 128 + WTERMSIG(child_status);
				/* The container ends with its process: what it left behind
				 * is killed, which also closes the pipes they held. */
				kill(-1, SIGKILL);
			}
		}
	}
	if (in_write >= 0)
		close(in_write);
	tcdrain(out_line);
	tcdrain(err_line);
	return status < 0 ? 125 : status;
}
