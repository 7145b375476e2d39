#include <sys/prctl.h>
#include "CSystem.h"
#include <string.h>

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
