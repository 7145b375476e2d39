/*
 * Running a container image's process (`skiff run`): the image's disk becomes
 * the root (read-only ext4 under a tmpfs overlay, so a run never changes the
 * cached disk), then the process runs with the spec's identity, environment
 * and working directory, its stdout and stderr relayed to ttyS1 and ttyS2.
 */
#ifndef SKIFF_CONTAINER_H
#define SKIFF_CONTAINER_H

#include "run_spec.h"

/* Serial lines the VMM maps to the host's stdout (and stdin) and stderr. */
#define SKIFF_STDOUT_TTY "/dev/ttyS1"
#define SKIFF_STDERR_TTY "/dev/ttyS2"

/*
 * Standard input from the host (`-i` without `-t`) arrives on ttyS1 with one
 * escape byte: ESC ESC is a literal ESC byte, ESC EOF marks the end of input.
 * Sources/SkiffKit/StandardInputFraming.swift writes it.
 */
#define SKIFF_STDIN_ESCAPE 0xFF
#define SKIFF_STDIN_EOF 0x00

/*
 * The host's control messages arrive on ttyS2 (the stderr line's unused
 * receive side): SKIFF_CONTROL_ESCAPE, a command, a signal number (three
 * bytes): deliver it to the container's process, or to every process (the
 * OCI runtime's `kill --all`). Sources/SkiffKit/ContainerLines.swift writes them.
 */
#define SKIFF_CONTROL_ESCAPE 0xFF
#define SKIFF_CONTROL_SIGNAL 'S'
#define SKIFF_CONTROL_SIGNAL_ALL 'A'
/* Six bytes: SKIFF_CONTROL_ESCAPE, 'W', rows and columns (16 bits each, big
 * endian): the container's terminal takes this size (-t only). */
#define SKIFF_CONTROL_WINDOW 'W'

/*
 * Opens the output lines and makes the image's disk at `root` (read-only
 * ext4, a tmpfs overlay above it) the root. Returns 0, or -1 having said why
 * on the stderr line. Nothing here depends on the run: it happens before the
 * hand-over, so a snapshot holds a guest with the image mounted.
 */
int container_prepare(const char *root);

/*
 * The OCI runtime's ready guest: container_prepare in two halves. The lines
 * open before the hand-over; the root is mounted after it, once the disk
 * the VMM attached at `root` shows `size` bytes (see attach_root). 0, or -1
 * having said why.
 */
int container_open_lines(void);
int container_attach_root(const char *root, unsigned long long size);

/* Writes all of `size` bytes (retrying interrupted and partial writes); 0, or -1. */
int container_write_all(int fd, const void *bytes, size_t size);

/* Says something on the stderr line (or init's stderr before it is open). */
void container_complain(const char *format, ...);

/*
 * After container_prepare: runs the spec's process to completion and returns its status as a shell
 * reports it: the exit code, 128+N for signal N, 127 when the executable does
 * not exist, 126 when it cannot be run, and 125 when the container could not
 * be set up (a message says why on the stderr line).
 */
int container_run(const struct run_spec *spec);

/*
 * In a new child: the spec's identity, directory and environment, `in`,
 * `out` and `err` as its standard streams (`terminal`: `out` is a terminal
 * that becomes the controlling one), then exec. Never returns; on failure it
 * says why on `err` and exits 126 or 127 as docker does.
 */
_Noreturn void container_exec_process(const struct run_spec *spec, int in, int out, int err, int terminal);

#endif
