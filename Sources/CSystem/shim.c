#define _GNU_SOURCE
#include <sys/prctl.h>
#include "CSystem.h"
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>

int csystem_attach_tap(int fd, const char *name, char *actual_name)
{
	struct ifreq request;

	memset(&request, 0, sizeof(request));
	strncpy(request.ifr_name, name, IFNAMSIZ - 1);
	request.ifr_flags = IFF_TAP | IFF_NO_PI;
	int result = ioctl(fd, TUNSETIFF, &request);
	if (result == 0 && actual_name)
		memcpy(actual_name, request.ifr_name, IFNAMSIZ);
	return result;
}

int csystem_become_subreaper(void)
{
	return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int csystem_send_fd(int socket_fd, int fd, const char *name)
{
	struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
	union {
		char buffer[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr message = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buffer, .msg_controllen = sizeof(control.buffer),
	};
	memset(control.buffer, 0, sizeof(control.buffer));
	struct cmsghdr *header = CMSG_FIRSTHDR(&message);
	header->cmsg_level = SOL_SOCKET;
	header->cmsg_type = SCM_RIGHTS;
	header->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(header), &fd, sizeof(int));
	ssize_t sent;
	do {
		sent = sendmsg(socket_fd, &message, MSG_NOSIGNAL);
	} while (sent < 0 && errno == EINTR);
	return sent < 0 ? -1 : 0;
}

int csystem_receive_fd(int socket_fd)
{
	char name[512];
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) };
	union {
		char buffer[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr message = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buffer, .msg_controllen = sizeof(control.buffer),
	};
	ssize_t received;
	do {
		received = recvmsg(socket_fd, &message, MSG_CMSG_CLOEXEC);
	} while (received < 0 && errno == EINTR);
	struct cmsghdr *header = received < 0 ? NULL : CMSG_FIRSTHDR(&message);
	if (!header || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(header), sizeof(int));
	return fd;
}

int csystem_open_pty(int *master, int *slave)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -1;
	char name[64];
	if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof(name)) != 0) {
		close(m);
		return -1;
	}
	int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		close(m);
		return -1;
	}
	*master = m;
	*slave = s;
	return 0;
}

int csystem_accept_nonblocking(int listener)
{
	return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int csystem_malloc_never_trim(void)
{
	return mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

int csystem_malloc_one_arena(void)
{
	return mallopt(M_ARENA_MAX, 1);
}

int csystem_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}
