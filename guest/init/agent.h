/*
 * The guest agent: more processes in a running container (the OCI runtime's
 * `exec`), over virtio-vsock.
 *
 * Init listens on vsock port SKIFF_AGENT_PORT while the container's process
 * runs. Each connection is one exec session, served by a child of init: the
 * host sends the process as a run spec (run_spec.h), the session starts it
 * with the container's root and relays its standard streams until it exits.
 *
 * Every message, both ways, is a frame: one kind byte, a 32-bit big-endian
 * payload length (at most SKIFF_FRAME_MAX), the payload.
 * Sources/OCIRuntime/AgentFrame.swift writes and reads them; the two must
 * stay in step.
 */
#ifndef SKIFF_AGENT_H
#define SKIFF_AGENT_H

#define SKIFF_AGENT_PORT 1024
#define SKIFF_FRAME_MAX 65536

/* Host → guest. */
#define SKIFF_FRAME_SPEC 'R'      /* first and once: the run spec's records */
#define SKIFF_FRAME_STDIN 'I'     /* bytes for the process's standard input */
#define SKIFF_FRAME_STDIN_END 'E' /* standard input ends (empty payload) */
#define SKIFF_FRAME_SIGNAL 'S'    /* one byte: a signal number for the process */
#define SKIFF_FRAME_WINDOW 'W'    /* rows, columns (16 bits each, big endian): its terminal's size */

/* Guest → host. */
#define SKIFF_FRAME_STARTED 'P'   /* 32 bits: the process's PID in the guest */
#define SKIFF_FRAME_STDOUT 'O'
#define SKIFF_FRAME_STDERR 'e'
#define SKIFF_FRAME_EXIT 'X'      /* 32 bits: its status as a shell reports it (128+N: signal N) */
#define SKIFF_FRAME_ERROR '!'     /* why the process could not be started; the session ends */

/* A listening vsock socket on SKIFF_AGENT_PORT, or -1 (no vsock device: no exec). */
int agent_listen(void);

/*
 * Accepts one connection on `listener` and serves it in a child process.
 * `inherited` lists descriptors of init's the session must not keep (the
 * container process's stdin pipe, say, whose end it would otherwise hold open).
 */
void agent_accept(int listener, const int *inherited, int inherited_count);

#endif
