// libarchive, loaded on first use with dlopen instead of linked: libarchive
// pulls in libxml2 and with it ICU, which would otherwise be loaded (and cost
// milliseconds and megabytes) at every start of `skiff`, including the ones
// that never read an archive. The declarations come from libarchive's own
// headers (Debian: libarchive-dev); only the functions listed here are used.
#ifndef SKIFF_CARCHIVE_LAZY_H
#define SKIFF_CARCHIVE_LAZY_H

#include <archive.h>
#include <archive_entry.h>
#include <stddef.h>
// Extended attributes of unpacked files (Glibc's module leaves them out).
#include <sys/xattr.h>

// X(return type, name, parameters, arguments): every libarchive function Skiff calls.
#define SKIFF_ARCHIVE_FUNCTIONS(X) \
    X(struct archive *, archive_read_new, (void), ()) \
    X(int, archive_read_support_filter_all, (struct archive *a), (a)) \
    X(int, archive_read_support_format_tar, (struct archive *a), (a)) \
    X(int, archive_read_open_fd, (struct archive *a, int fd, size_t block), (a, fd, block)) \
    X(int, archive_read_next_header, (struct archive *a, struct archive_entry **entry), (a, entry)) \
    X(la_ssize_t, archive_read_data, (struct archive *a, void *buffer, size_t size), (a, buffer, size)) \
    X(int, archive_read_data_block, (struct archive *a, const void **buffer, size_t *size, la_int64_t *offset), (a, buffer, size, offset)) \
    X(int, archive_read_free, (struct archive *a), (a)) \
    X(const char *, archive_error_string, (struct archive *a), (a)) \
    X(const char *, archive_entry_pathname, (struct archive_entry *e), (e)) \
    X(const char *, archive_entry_hardlink, (struct archive_entry *e), (e)) \
    X(const char *, archive_entry_symlink, (struct archive_entry *e), (e)) \
    X(__LA_MODE_T, archive_entry_mode, (struct archive_entry *e), (e)) \
    X(la_int64_t, archive_entry_uid, (struct archive_entry *e), (e)) \
    X(la_int64_t, archive_entry_gid, (struct archive_entry *e), (e)) \
    X(time_t, archive_entry_mtime, (struct archive_entry *e), (e)) \
    X(dev_t, archive_entry_rdev, (struct archive_entry *e), (e)) \
    X(la_int64_t, archive_entry_size, (struct archive_entry *e), (e)) \
    X(int, archive_entry_size_is_set, (struct archive_entry *e), (e)) \
    X(int, archive_entry_xattr_reset, (struct archive_entry *e), (e)) \
    X(int, archive_entry_xattr_next, (struct archive_entry *e, const char **name, const void **value, size_t *size), (e, name, value, size))

#define SKIFF_ARCHIVE_PROTOTYPE(type, name, parameters, arguments) type skiff_##name parameters;
SKIFF_ARCHIVE_FUNCTIONS(SKIFF_ARCHIVE_PROTOTYPE)
#undef SKIFF_ARCHIVE_PROTOTYPE

/// Loads libarchive.so.13 once (thread-safe). Returns 0, or -1 with a static
/// message in *error. No skiff_archive_* function may be called before it
/// has returned 0.
int skiff_archive_load(const char **error);

#endif
