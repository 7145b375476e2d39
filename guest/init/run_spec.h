/*
 * The run spec: what `skiff run` asks the guest init to run, and how.
 *
 * The VMM appends a small cpio archive to the initramfs holding
 * SKIFF_RUN_SPEC_PATH: NUL-terminated "key=value" records, in any order
 * except that the first is "skiff-run-spec=1". Repeated keys ("arg", "env",
 * "group") build lists in order. Written by Sources/SkiffKit/RunSpec.swift;
 * the two must stay in step. Values may hold any byte but NUL, so arguments
 * and environment values need no quoting (unlike the kernel command line,
 * which is also limited to 2 KiB).
 */
#ifndef SKIFF_RUN_SPEC_H
#define SKIFF_RUN_SPEC_H

#include <sys/types.h>

#define SKIFF_RUN_SPEC_PATH "/skiff/run-spec"
#define SKIFF_RUN_SPEC_MAX_GROUPS 64

struct run_spec {
	char **argv;           /* NULL-terminated; at least one word */
	char **envp;           /* NULL-terminated */
	const char *cwd;       /* absolute */
	const char *hostname;
	const char *root;      /* block device holding the image's ext4 root, e.g. /dev/vda */
	uid_t uid;
	gid_t gid;
	gid_t groups[SKIFF_RUN_SPEC_MAX_GROUPS];
	int group_count;
	int tty;               /* -t: ttyS1 is the container's controlling terminal */
	int interactive;       /* -i: the host forwards standard input */
	unsigned short rows, columns; /* the host terminal's size, for -t */
};

/*
 * Reads and checks the spec at `path`. Returns 1 when there is a valid spec,
 * 0 when there is none (plain `skiff boot`), and -1 (with a message in `error`)
 * when the file exists but is malformed.
 */
int run_spec_load(const char *path, struct run_spec *spec, char *error, size_t error_size);

#endif
