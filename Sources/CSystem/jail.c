// The system calls of Skiff's jail that Swift cannot reach through Glibc
// (variadic, or behind _GNU_SOURCE): namespaces, pivot_root, and dropping
// every privilege at once.
#define _GNU_SOURCE
#include "CSystem.h"
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int csystem_unshare(int flags)
{
	return unshare(flags) == 0 ? 0 : -errno;
}

int csystem_pivot_root(const char *new_root, const char *put_old)
{
	return syscall(SYS_pivot_root, new_root, put_old) == 0 ? 0 : -errno;
}

int csystem_drop_privileges(unsigned int uid, unsigned int gid)
{
	/* The bounding set first (that needs CAP_SETPCAP, still held): no
	 * capability can come back through an exec either. */
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
			return -errno;
	if (setgroups(0, NULL) != 0) return -errno;
	if (setresgid(gid, gid, gid) != 0) return -errno;
	/* All user IDs non-zero: the kernel clears the permitted and effective sets. */
	if (setresuid(uid, uid, uid) != 0) return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
	return 0;
}
