// libarchive (Debian: libarchive-dev): reads image layers as tar, tar+gzip or
// tar+zstd, and writes archives in tests.
#include <archive.h>
#include <archive_entry.h>
// Extended attributes of unpacked files (Glibc's module leaves them out).
#include <sys/xattr.h>
