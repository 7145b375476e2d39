/*
 * Parses the run spec (see run_spec.h). Every value is checked here, once,
 * so that the code that switches root and execs can trust what it gets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_spec.h"

#define SPEC_MAX_SIZE (1 << 20)

static int parse_number(const char *text, unsigned long max, unsigned long *out)
{
	char *end;

	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	unsigned long value = strtoul(text, &end, 10);
	if (errno || *end || value > max)
		return -1;
	*out = value;
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * A file, "MODE:HEX:PATH" (decoded in place: the bytes are shorter than their
 * hex), or a directory, "MODE:PATH": octal permission bits, an absolute path.
 */
static int parse_file(char *value, struct run_file *file, int directory)
{
	char *path = strchr(value, ':');
	char *hex = NULL;
	unsigned long mode;
	char *end;

	if (!path)
		return -1;
	*path++ = '\0';
	if (!directory) {
		hex = path;
		path = strchr(hex, ':');
		if (!path)
			return -1;
		*path++ = '\0';
	}
	errno = 0;
	mode = strtoul(value, &end, 8);
	if (errno || *end || end == value || mode > 07777 || path[0] != '/')
		return -1;
	memset(file, 0, sizeof(*file));
	file->path = path;
	file->mode = (unsigned)mode;
	file->directory = directory;
	if (directory)
		return 0;
	size_t digits = strlen(hex);
	if (digits % 2)
		return -1;
	unsigned char *out = (unsigned char *)hex;
	for (size_t i = 0; i < digits; i += 2) {
		int high = hex_value(hex[i]), low = hex_value(hex[i + 1]);
		if (high < 0 || low < 0)
			return -1;
		out[i / 2] = (unsigned char)(high << 4 | low);
	}
	file->data = out;
	file->size = digits / 2;
	return 0;
}

static char *read_all(const char *path, size_t *size, int *missing)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat info;

	*missing = 0;
	if (fd < 0) {
		*missing = errno == ENOENT;
		return NULL;
	}
	if (fstat(fd, &info) != 0 || info.st_size <= 0 || info.st_size > SPEC_MAX_SIZE) {
		close(fd);
		return NULL;
	}
	char *data = malloc((size_t)info.st_size + 1);
	size_t done = 0;
	while (data && done < (size_t)info.st_size) {
		ssize_t n = read(fd, data + done, (size_t)info.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(data);
			data = NULL;
			break;
		}
		done += (size_t)n;
	}
	close(fd);
	if (data) {
		data[done] = '\0';
		*size = done;
	}
	return data;
}

char *run_spec_read(const char *path, size_t *size, char *error, size_t error_size)
{
	int missing;
	char *data = read_all(path, size, &missing);

	if (!data && !missing)
		snprintf(error, error_size, "cannot read %s", path);
	else if (!data)
		error[0] = '\0';
	return data;
}

const char *run_spec_preparation(char *data, size_t size, int *attach_later)
{
	const char *root = NULL;

	*attach_later = 0;
	if (size < 2 || data[size - 1] != '\0' || strcmp(data, "skiff-prepare=1") != 0)
		return NULL;
	for (char *record = data; record < data + size; record += strlen(record) + 1) {
		if (!strncmp(record, "root=/dev/", 10))
			root = record + 5;
		else if (!strcmp(record, "attach=handover"))
			*attach_later = 1;
	}
	return root;
}

int run_spec_parse(char *data, size_t size, const char *path, struct run_spec *spec, char *error, size_t error_size)
{
#define FAIL(...) do { snprintf(error, error_size, __VA_ARGS__); return -1; } while (0)
	if (size == 0 || data[size - 1] != '\0')
		FAIL("%s: the last record is not NUL-terminated", path);

	/* Two passes: count the list entries, then fill them in. */
	size_t records = 0;
	for (size_t i = 0; i < size; i++)
		records += data[i] == '\0';
	memset(spec, 0, sizeof(*spec));
	spec->argv = calloc(records + 1, sizeof(char *));
	spec->envp = calloc(records + 1, sizeof(char *));
	if (!spec->argv || !spec->envp)
		FAIL("out of memory");

	int argc = 0, envc = 0, version_seen = 0, uid_seen = 0, gid_seen = 0;
	for (char *record = data, *next; record < data + size; record = next) {
		next = record + strlen(record) + 1; /* before the '=' below becomes a NUL */
		char *value = strchr(record, '=');
		unsigned long number;

		if (!value)
			FAIL("%s: record without '=': \"%.40s\"", path, record);
		*value++ = '\0';
		if (!version_seen) {
			if (strcmp(record, "skiff-run-spec") != 0 || strcmp(value, "1") != 0)
				FAIL("%s: not a version 1 run spec", path);
			version_seen = 1;
		} else if (!strcmp(record, "arg")) {
			spec->argv[argc++] = value;
		} else if (!strcmp(record, "env")) {
			if (!strchr(value, '='))
				FAIL("%s: environment entry without '=': \"%.40s\"", path, value);
			spec->envp[envc++] = value;
		} else if (!strcmp(record, "cwd")) {
			if (value[0] != '/')
				FAIL("%s: the working directory \"%s\" is not absolute", path, value);
			spec->cwd = value;
		} else if (!strcmp(record, "hostname")) {
			if (strlen(value) > 64)
				FAIL("%s: hostname longer than 64 bytes", path);
			spec->hostname = value;
		} else if (!strcmp(record, "root")) {
			if (strncmp(value, "/dev/", 5) != 0)
				FAIL("%s: root \"%s\" is not a /dev path", path, value);
			spec->root = value;
		} else if (!strcmp(record, "root-size")) {
			/* Whole sectors, at most 2^63 bytes; strtoull alone would take "-1". */
			char *end;
			errno = 0;
			unsigned long long bytes = value[0] >= '0' && value[0] <= '9' ? strtoull(value, &end, 10) : 0;
			if (value[0] < '0' || value[0] > '9' || errno || *end || bytes == 0 || bytes % 512 || bytes >> 63)
				FAIL("%s: bad root size \"%s\"", path, value);
			spec->root_size = bytes;
		} else if (!strcmp(record, "uid")) {
			if (parse_number(value, 0xFFFFFFFEul, &number))
				FAIL("%s: bad uid \"%s\"", path, value);
			spec->uid = (uid_t)number;
			uid_seen = 1;
		} else if (!strcmp(record, "gid")) {
			if (parse_number(value, 0xFFFFFFFEul, &number))
				FAIL("%s: bad gid \"%s\"", path, value);
			spec->gid = (gid_t)number;
			gid_seen = 1;
		} else if (!strcmp(record, "group")) {
			if (parse_number(value, 0xFFFFFFFEul, &number))
				FAIL("%s: bad supplementary group \"%s\"", path, value);
			if (spec->group_count == SKIFF_RUN_SPEC_MAX_GROUPS)
				FAIL("%s: more than %d supplementary groups", path, SKIFF_RUN_SPEC_MAX_GROUPS);
			spec->groups[spec->group_count++] = (gid_t)number;
		} else if (!strcmp(record, "tty") || !strcmp(record, "interactive")) {
			if (parse_number(value, 1, &number))
				FAIL("%s: %s must be 0 or 1", path, record);
			*(record[0] == 't' ? &spec->tty : &spec->interactive) = (int)number;
		} else if (!strcmp(record, "rows") || !strcmp(record, "columns")) {
			if (parse_number(value, 0xFFFF, &number))
				FAIL("%s: bad terminal %s \"%s\"", path, record, value);
			*(record[0] == 'r' ? &spec->rows : &spec->columns) = (unsigned short)number;
		} else if (!strcmp(record, "file") || !strcmp(record, "dir")) {
			if (spec->file_count == SKIFF_RUN_SPEC_MAX_FILES)
				FAIL("%s: more than %d files and directories", path, SKIFF_RUN_SPEC_MAX_FILES);
			struct run_file *file = &spec->files[spec->file_count];
			if (parse_file(value, file, record[0] == 'd') != 0)
				FAIL("%s: bad %s record", path, record);
			spec->file_count++;
		} else {
			FAIL("%s: unknown record \"%s\"", path, record);
		}
	}
	if (!version_seen)
		FAIL("%s: empty run spec", path);
	spec->argc = argc;
	if (argc == 0)
		FAIL("%s: no command to run", path);
	if (!spec->root)
		FAIL("%s: no root device", path);
	if (!uid_seen || !gid_seen)
		FAIL("%s: no uid or gid", path);
	if (!spec->cwd)
		spec->cwd = "/";
#undef FAIL
	return 1;
}
