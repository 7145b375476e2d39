/*
 * Reads the hand-over mailbox (handover.h) through /dev/mem: the page is
 * reserved in the e820 map below 1 MiB, which STRICT_DEVMEM allows.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <termios.h>
#include <unistd.h>

#include "boot_marker.h"
#include "handover.h"

/* <linux/random.h>, which musl's headers do not carry. */
#define SKIFF_RNDADDENTROPY 0x40085203 /* _IOW('R', 0x03, int[2]) */
#define SKIFF_RNDRESEEDCRNG 0x5207     /* _IO('R', 0x07) */

struct header {
	char magic[8];
	uint32_t version;
	uint32_t chunk;
	uint64_t total;
	uint64_t offset;
	int64_t seconds;
	uint32_t nanoseconds;
	uint32_t reserved;
	unsigned char seed[64];
	unsigned char reserved2[16];
};

_Static_assert(sizeof(struct header) == SKIFF_HANDOVER_HEADER, "the header is 128 bytes");

static int read_mailbox(int fd, void *buffer, size_t size, off_t offset)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = pread(fd, (char *)buffer + done, size - done, offset + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int read_header(int fd, struct header *header)
{
	if (read_mailbox(fd, header, sizeof(*header), SKIFF_HANDOVER_ADDRESS) != 0)
		return -1;
	if (memcmp(header->magic, "SKIFFHO1", 8) != 0 || header->version != 1 ||
	    header->chunk > SKIFF_HANDOVER_SIZE - SKIFF_HANDOVER_HEADER)
		return -1;
	return 0;
}

/* The seed goes in credited, then the CRNG is reseeded from it at once. */
static void reseed(const unsigned char *seed)
{
	struct {
		int entropy_count;
		int buf_size;
		unsigned char buf[64];
	} entropy = { 64 * 8, 64, { 0 } };
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);

	memcpy(entropy.buf, seed, 64);
	if (fd < 0 || ioctl(fd, SKIFF_RNDADDENTROPY, &entropy) != 0 || ioctl(fd, SKIFF_RNDRESEEDCRNG) != 0)
		fprintf(stderr, "skiff-init: cannot reseed the random number generator: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);
	memset(&entropy, 0, sizeof(entropy));
}

char *handover_receive(size_t *size, char *error, size_t error_size)
{
	struct header header;
	int fd = open("/dev/mem", O_RDONLY | O_CLOEXEC);

#define FAIL(...) do { snprintf(error, error_size, __VA_ARGS__); if (fd >= 0) close(fd); return NULL; } while (0)
	if (fd < 0)
		FAIL("hand-over: /dev/mem: %s", strerror(errno));
	/* A snapshot is taken at this marker: console output still on its way
	 * out (in stdio's buffer or the tty's transmit queue) would be sent again
	 * by every restored clone, so it leaves first. */
	fflush(stdout);
	fflush(stderr);
	tcdrain(STDOUT_FILENO);
	tcdrain(STDERR_FILENO);
	/* The VMM writes the first chunk before this port write returns. */
	skiff_marker(SKIFF_MARKER_GUEST_READY);
	if (read_header(fd, &header) != 0 || header.offset != 0)
		FAIL("hand-over: the VMM left no hand-over (an older skiff?)");

	reseed(header.seed);
	struct timespec now = { .tv_sec = (time_t)header.seconds, .tv_nsec = (long)header.nanoseconds };
	if (clock_settime(CLOCK_REALTIME, &now) != 0)
		fprintf(stderr, "skiff-init: cannot set the clock: %s\n", strerror(errno));

	if (header.total > SKIFF_HANDOVER_PAYLOAD_MAX)
		FAIL("hand-over: a payload of %llu bytes", (unsigned long long)header.total);
	char *payload = malloc((size_t)header.total + 1);
	if (!payload)
		FAIL("hand-over: out of memory for %llu bytes", (unsigned long long)header.total);
	size_t got = 0;
	for (;;) {
		if (header.offset != got || header.chunk > header.total - got) {
			free(payload);
			FAIL("hand-over: chunk at %llu, expected %zu", (unsigned long long)header.offset, got);
		}
		if (read_mailbox(fd, payload + got, header.chunk, SKIFF_HANDOVER_ADDRESS + SKIFF_HANDOVER_HEADER) != 0) {
			free(payload);
			FAIL("hand-over: reading /dev/mem: %s", strerror(errno));
		}
		got += header.chunk;
		if (got == header.total)
			break;
		if (header.chunk == 0) {
			free(payload);
			FAIL("hand-over: an empty chunk at %zu of %llu", got, (unsigned long long)header.total);
		}
		skiff_marker(SKIFF_MARKER_HANDOVER_MORE);
		if (read_header(fd, &header) != 0) {
			free(payload);
			FAIL("hand-over: no next chunk");
		}
	}
	close(fd);
	payload[got] = '\0';
	*size = got;
	skiff_marker(SKIFF_MARKER_HANDOVER_TAKEN);
	return payload;
#undef FAIL
}
