// libFuzzer target (C, clang -fsanitize=fuzzer,address): the guest init's
// run-spec parser (guest/init/run_spec.c), which reads what the host hands
// over (NUL-separated key=value records). A bad spec must be an error
// message, never a read or write outside the buffer.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../guest/init/run_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	char error[256];
	struct run_spec spec;
	int attach_later;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = 0;
	(void)run_spec_preparation(copy, size, &attach_later);
	memcpy(copy, data, size);
	memset(&spec, 0, sizeof(spec));
	(void)run_spec_parse(copy, size, "fuzz", &spec, error, sizeof(error));
	/* Allocated as soon as the records are counted, success or not (init exits on failure). */
	free(spec.argv);
	free(spec.envp);
	free(copy);
	return 0;
}
