/*
 * The run spec: what `skiff run` asks the guest init to run, and how.
 *
 * The VMM hands it over when init is ready (handover.h): NUL-terminated
 * "key=value" records, in any order except that the first is "skiff-run-spec=1". Repeated keys ("arg", "env",
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
#define SKIFF_RUN_SPEC_MAX_FILES 256

/* "file=MODE:HEX:PATH": a file written into the container's root before the
 * process starts (an OCI bundle's bind-mounted /etc/hosts, say); "dir=MODE:PATH":
 * a directory made there (a bind-mounted directory's tree, copied). In order:
 * a directory comes before what it holds. */
struct run_file {
	const char *path;      /* absolute */
	const unsigned char *data;
	size_t size;
	unsigned mode;         /* permission bits */
	int directory;         /* a "dir=" record: no data */
};

struct run_spec {
	char **argv;           /* NULL-terminated; at least one word */
	int argc;
	char **envp;           /* NULL-terminated */
	const char *cwd;       /* absolute */
	const char *hostname;
	const char *root;      /* block device holding the image's ext4 root, e.g. /dev/vda */
	unsigned long long root_size; /* its size in bytes, when attached at the hand-over (0: not said) */
	uid_t uid;
	gid_t gid;
	gid_t groups[SKIFF_RUN_SPEC_MAX_GROUPS];
	int group_count;
	int tty;               /* -t: ttyS1 is the container's controlling terminal */
	int interactive;       /* -i: the host forwards standard input */
	unsigned short rows, columns; /* the host terminal's size, for -t */
	struct run_file files[SKIFF_RUN_SPEC_MAX_FILES];
	int file_count;
};

/*
 * Reads the file at `path` (NUL-terminated records). NULL with an empty
 * `error` when there is none (plain `skiff boot`), NULL with a message when it
 * cannot be read.
 */
char *run_spec_read(const char *path, size_t *size, char *error, size_t error_size);

/*
 * What the VMM puts in the initramfs for `skiff run`: "skiff-prepare=1" and
 * the root device, nothing of the run itself (that comes in the hand-over, so
 * that a snapshot taken while init waits for it serves every run). Returns
 * the root device, or NULL when `data` is not a preparation.
 *
 * "attach=handover" (the OCI runtime's ready guest, which serves every
 * bundle): the disk behind the root device is only known at the hand-over,
 * so init mounts nothing before it; `*attach_later` says so.
 */
const char *run_spec_preparation(char *data, size_t size, int *attach_later);

/*
 * Checks a run spec's records (`data` is modified in place and must outlive
 * `spec`); `what` names it in messages. Returns 1, or -1 with a message.
 */
int run_spec_parse(char *data, size_t size, const char *what, struct run_spec *spec, char *error, size_t error_size);

#endif
