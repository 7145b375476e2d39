/*
 * Exec sessions over virtio-vsock (agent.h). A session is a child of init:
 * it reads the run spec, starts the process (pipes, or a pseudo-terminal
 * when the spec asks for one), then relays frames until the process has
 * exited and its output is drained. If the host goes away, the process is
 * killed: nobody would read it or learn its status.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "container.h"
#include "run_spec.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* <linux/vm_sockets.h>'s address, which musl's headers do not carry. */
struct vsock_address {
	sa_family_t family;
	unsigned short reserved;
	unsigned int port;
	unsigned int cid;
	unsigned char flags;
	unsigned char zero[3];
};

#define VSOCK_CID_ANY 0xFFFFFFFFu
#define SPEC_MAX (1 << 20)

int agent_listen(void)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct vsock_address address = { .family = AF_VSOCK, .port = SKIFF_AGENT_PORT, .cid = VSOCK_CID_ANY };

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int read_all(int fd, void *data, size_t size)
{
	char *p = data;

	while (size > 0) {
		ssize_t n = read(fd, p, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

static int send_frame(int connection, char kind, const void *payload, uint32_t length)
{
	unsigned char header[5] = { (unsigned char)kind, length >> 24, length >> 16, length >> 8, length };

	if (container_write_all(connection, header, sizeof(header)) != 0)
		return -1;
	return length ? container_write_all(connection, payload, length) : 0;
}

static int send_number(int connection, char kind, uint32_t value)
{
	unsigned char bytes[4] = { value >> 24, value >> 16, value >> 8, value };
	return send_frame(connection, kind, bytes, 4);
}

static _Noreturn void session_fail(int connection, const char *message)
{
	send_frame(connection, SKIFF_FRAME_ERROR, message, (uint32_t)strlen(message));
	_exit(125);
}

/* The first frame: the run spec. Returns its records (parsed into `spec`) or ends the session. */
static char *receive_spec(int connection, struct run_spec *spec)
{
	unsigned char header[5];
	char error[256];

	if (read_all(connection, header, sizeof(header)) != 0)
		_exit(0);
	uint32_t length = (uint32_t)header[1] << 24 | header[2] << 16 | header[3] << 8 | header[4];
	if (header[0] != SKIFF_FRAME_SPEC || length == 0 || length > SPEC_MAX)
		session_fail(connection, "the session did not begin with a run spec");
	char *data = malloc(length);
	if (!data || read_all(connection, data, length) != 0)
		_exit(0);
	if (run_spec_parse(data, length, "the exec spec", spec, error, sizeof(error)) < 0)
		session_fail(connection, error);
	return data;
}

/* Relays one read of `*fd` as a frame of `kind`; closes it at its end. */
static void relay_output(int *fd, int connection, char kind, pid_t process)
{
	char buffer[SKIFF_FRAME_MAX];
	ssize_t n = read(*fd, buffer, sizeof(buffer));

	if (n > 0) {
		if (send_frame(connection, kind, buffer, (uint32_t)n) != 0) {
			kill(-process, SIGKILL); /* the host went away */
			_exit(0);
		}
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd); /* EOF, or EIO: a terminal whose last holder closed it */
		*fd = -1;
	}
}

struct session {
	int connection;
	pid_t process;
	int terminal_master;            /* -1 without a terminal */
	int input;                      /* where standard input goes, -1 once ended */
	unsigned char frames[SKIFF_FRAME_MAX + 5];
	size_t have;                    /* bytes of `frames` read */
	size_t pending_start, pending_end; /* a stdin payload inside `frames` not yet written */
};

/* Acts on each whole frame in the buffer; stops at a stdin payload the process has not taken yet. */
static void handle_frames(struct session *s)
{
	while (s->pending_start == s->pending_end && s->have >= 5) {
		unsigned char *f = s->frames;
		uint32_t length = (uint32_t)f[1] << 24 | f[2] << 16 | f[3] << 8 | f[4];
		if (length > SKIFF_FRAME_MAX) {
			kill(-s->process, SIGKILL);
			_exit(0);
		}
		if (s->have < 5 + length)
			return;
		switch (f[0]) {
		case SKIFF_FRAME_STDIN:
			if (s->input >= 0) {
				s->pending_start = 5;
				s->pending_end = 5 + length;
				return; /* consumed as the process takes it */
			}
			break;
		case SKIFF_FRAME_STDIN_END:
			if (s->input >= 0 && s->terminal_master < 0)
				close(s->input);
			if (s->terminal_master < 0)
				s->input = -1;
			break;
		case SKIFF_FRAME_SIGNAL:
			if (length == 1 && f[5] >= 1 && f[5] <= 64)
				kill(s->process, f[5]);
			break;
		case SKIFF_FRAME_WINDOW:
			if (length == 4 && s->terminal_master >= 0) {
				struct winsize size = { .ws_row = (unsigned short)(f[5] << 8 | f[6]),
							.ws_col = (unsigned short)(f[7] << 8 | f[8]) };
				if (size.ws_row && size.ws_col)
					ioctl(s->terminal_master, TIOCSWINSZ, &size);
			}
			break;
		default:
			break; /* unknown kinds are skipped: a newer host may send more */
		}
		memmove(f, f + 5 + length, s->have - 5 - length);
		s->have -= 5 + length;
	}
}

/* Writes what it can of the pending stdin payload; drops the frame once written. */
static void feed_input(struct session *s)
{
	ssize_t n = write(s->input, s->frames + s->pending_start, s->pending_end - s->pending_start);

	if (n > 0) {
		s->pending_start += (size_t)n;
	} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
		s->pending_start = s->pending_end; /* the process closed its stdin: drop the rest */
	}
	if (s->pending_start == s->pending_end) {
		size_t used = s->pending_end;
		memmove(s->frames, s->frames + used, s->have - used);
		s->have -= used;
		s->pending_start = s->pending_end = 0;
		handle_frames(s);
	}
}

static _Noreturn void serve(int connection)
{
	static struct session s;
	struct run_spec spec;
	char message[256];

	s.connection = connection;
	s.terminal_master = -1;
	receive_spec(connection, &spec);

	sigset_t child;
	sigemptyset(&child);
	sigaddset(&child, SIGCHLD);
	sigprocmask(SIG_BLOCK, &child, NULL);
	int signals = signalfd(-1, &child, SFD_CLOEXEC | SFD_NONBLOCK);

	int out_read = -1, err_read = -1, child_in, child_out, child_err;
	if (spec.tty) {
		int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		char *name = master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0 ? ptsname(master) : NULL;
		int slave = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
		if (slave < 0) {
			snprintf(message, sizeof(message), "skiff-init: cannot open a pseudo-terminal: %s", strerror(errno));
			session_fail(connection, message);
		}
		struct winsize size = { .ws_row = spec.rows, .ws_col = spec.columns };
		if (size.ws_row && size.ws_col)
			ioctl(slave, TIOCSWINSZ, &size);
		child_in = child_out = child_err = slave;
		s.terminal_master = master;
		s.input = master;
		out_read = master;
	} else {
		int out[2], err[2], in[2] = { -1, -1 };
		if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
		    (spec.interactive && pipe2(in, O_CLOEXEC) != 0))
			session_fail(connection, "skiff-init: cannot make pipes");
		child_out = out[1];
		child_err = err[1];
		child_in = spec.interactive ? in[0] : open("/dev/null", O_RDONLY | O_CLOEXEC);
		out_read = out[0];
		err_read = err[0];
		s.input = in[1];
	}

	pid_t pid = fork();
	if (pid < 0)
		session_fail(connection, "skiff-init: fork failed");
	if (pid == 0)
		container_exec_process(&spec, child_in, child_out, child_err, spec.tty);
	s.process = pid;
	if (child_in != child_out)
		close(child_in);
	close(child_out);
	if (child_err != child_out)
		close(child_err);
	if (s.input >= 0)
		fcntl(s.input, F_SETFL, fcntl(s.input, F_GETFL) | O_NONBLOCK);
	send_number(connection, SKIFF_FRAME_STARTED, (uint32_t)pid);

	int status = -1;
	int connection_open = 1;
	for (;;) {
		/* Done once the process has exited and its output is drained (a
		 * terminal: read until it is empty, since others may hold it). */
		if (status >= 0 && out_read < 0 && err_read < 0)
			break;
		struct pollfd polls[5];
		int count = 0, at_out = -1, at_err = -1, at_connection = -1, at_input = -1;
		if (out_read >= 0) { at_out = count; polls[count++] = (struct pollfd){ out_read, POLLIN, 0 }; }
		if (err_read >= 0) { at_err = count; polls[count++] = (struct pollfd){ err_read, POLLIN, 0 }; }
		if (connection_open && s.pending_start == s.pending_end && s.have < sizeof(s.frames)) {
			at_connection = count;
			polls[count++] = (struct pollfd){ connection, POLLIN, 0 };
		}
		if (s.input >= 0 && s.pending_start != s.pending_end) {
			at_input = count;
			polls[count++] = (struct pollfd){ s.input, POLLOUT, 0 };
		}
		int at_signals = count;
		polls[count++] = (struct pollfd){ signals, POLLIN, 0 };

		/* After the exit, output that does not come within 200 ms is not waited for. */
		int ready = poll(polls, (nfds_t)count, status >= 0 ? 200 : -1);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			break;
		if (at_out >= 0 && polls[at_out].revents)
			relay_output(&out_read, connection, SKIFF_FRAME_STDOUT, pid);
		if (at_err >= 0 && polls[at_err].revents)
			relay_output(&err_read, connection, SKIFF_FRAME_STDERR, pid);
		if (at_input >= 0 && polls[at_input].revents)
			feed_input(&s);
		if (at_connection >= 0 && polls[at_connection].revents) {
			ssize_t n = read(connection, s.frames + s.have, sizeof(s.frames) - s.have);
			if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
				kill(-pid, SIGKILL); /* the host went away */
				_exit(0);
			}
			if (n > 0) {
				s.have += (size_t)n;
				handle_frames(&s);
			}
		}
		if (polls[at_signals].revents) {
			struct signalfd_siginfo info;
			while (read(signals, &info, sizeof(info)) > 0) {
			}
			int child_status;
			while (status < 0 && waitpid(pid, &child_status, WNOHANG) == pid)
				status = WIFEXITED(child_status) ? WEXITSTATUS(child_status) : 128 + WTERMSIG(child_status);
		}
	}
	if (status < 0) {
		int child_status;
		if (waitpid(pid, &child_status, 0) == pid)
			status = WIFEXITED(child_status) ? WEXITSTATUS(child_status) : 128 + WTERMSIG(child_status);
	}
	send_number(connection, SKIFF_FRAME_EXIT, (uint32_t)(status < 0 ? 125 : status));
	shutdown(connection, SHUT_WR);
	/* Wait for the host to close, so the exit frame is not cut off by a reset. */
	char drain[256];
	struct pollfd wait_close = { connection, POLLIN, 0 };
	while (poll(&wait_close, 1, 2000) > 0 && read(connection, drain, sizeof(drain)) > 0) {
	}
	_exit(0);
}

void agent_accept(int listener, const int *inherited, int inherited_count)
{
	int connection = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

	if (connection < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		close(listener);
		for (int i = 0; i < inherited_count; i++)
			if (inherited[i] >= 0)
				close(inherited[i]);
		serve(connection);
	}
	close(connection);
}
