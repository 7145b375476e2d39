/*
 * Boot markers: the guest tells the VMM which phase it reached by writing one
 * byte to an I/O port; the VMM stamps it with the host clock. The numbers are
 * shared with Sources/Devices/BootMarker.swift and must stay in step with it.
 */
#ifndef SKIFF_BOOT_MARKER_H
#define SKIFF_BOOT_MARKER_H

#define SKIFF_MARKER_PORT 0x440        /* phase code (one byte) */
#define SKIFF_MARKER_VALUE_PORT 0x441  /* a value for the last phase (exit status) */

enum skiff_marker {
	SKIFF_MARKER_INIT_STARTED = 0x01,     /* PID 1 runs: the kernel has handed over */
	SKIFF_MARKER_WORKLOAD_STARTED = 0x02, /* about to exec the workload */
	SKIFF_MARKER_WORKLOAD_EXITED = 0x03,  /* value port carries the exit status */
	SKIFF_MARKER_SHUTDOWN = 0x04,         /* clean shutdown: a reset after this is expected */
	SKIFF_MARKER_CONTAINER_READY = 0x05,  /* skiff run: the container's lines are set up, stdin may flow */
	SKIFF_MARKER_GUEST_READY = 0x06,      /* waiting for the hand-over (handover.h): snapshots are taken here */
	SKIFF_MARKER_HANDOVER_MORE = 0x07,    /* hand-over chunk read: the next one, please */
	SKIFF_MARKER_HANDOVER_TAKEN = 0x08,   /* hand-over read; randomness reseeded, clock set */
};

/* Writes a marker through /dev/port (works from user mode on any host). */
void skiff_marker(int code);
void skiff_marker_value(int code, int value);

#endif
