/*
 * The hand-over: what the VMM gives init when init says it is ready (the
 * "guest ready" boot marker), through a mailbox in guest memory that
 * Sources/Devices/HandoverMailbox.swift writes: the host's wall-clock time,
 * 64 bytes of fresh entropy, and a payload of any size in chunks.
 *
 * A snapshot is taken while init waits here, so a cold boot and every restore
 * of it continue from this point alike, and each gets its own clock, seed and
 * payload: clones of one snapshot do not share their randomness or a stale time.
 */
#ifndef SKIFF_HANDOVER_H
#define SKIFF_HANDOVER_H

#include <stddef.h>

#define SKIFF_HANDOVER_ADDRESS 0xE0000
#define SKIFF_HANDOVER_SIZE (64 * 1024)
#define SKIFF_HANDOVER_HEADER 128
#define SKIFF_HANDOVER_PAYLOAD_MAX (64u << 20)

/*
 * Says "ready", waits for the hand-over, reseeds the kernel's random number
 * generator and sets the clock from it, and returns the payload (malloc'd,
 * NUL-terminated beyond `size`; size 0 when there is none). NULL with a
 * message in `error` when the VMM did not hand over.
 */
char *handover_receive(size_t *size, char *error, size_t error_size);

#endif
