#include "CArchiveLazy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define SKIFF_ARCHIVE_POINTER(type, name, parameters, arguments) static type (*pointer_##name) parameters;
SKIFF_ARCHIVE_FUNCTIONS(SKIFF_ARCHIVE_POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *load_error;
static char load_message[512];

static void load(void) {
    // RTLD_LOCAL: nothing of libarchive's (or libxml2's) leaks into the global namespace.
    void *library = dlopen("libarchive.so.13", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        snprintf(load_message, sizeof load_message,
                 "cannot load libarchive (install libarchive13: apt-get install libarchive13): %s", dlerror());
        load_error = load_message;
        return;
    }
#define SKIFF_ARCHIVE_RESOLVE(type, name, parameters, arguments) \
    pointer_##name = (type (*) parameters)dlsym(library, #name); \
    if (pointer_##name == NULL) { \
        snprintf(load_message, sizeof load_message, "libarchive.so.13 has no %s", #name); \
        load_error = load_message; \
        return; \
    }
    SKIFF_ARCHIVE_FUNCTIONS(SKIFF_ARCHIVE_RESOLVE)
}

int skiff_archive_load(const char **error) {
    pthread_once(&once, load);
    if (load_error != NULL) {
        if (error != NULL) *error = load_error;
        return -1;
    }
    return 0;
}

#define SKIFF_ARCHIVE_FORWARD(type, name, parameters, arguments) \
    type skiff_##name parameters { return pointer_##name arguments; }
SKIFF_ARCHIVE_FUNCTIONS(SKIFF_ARCHIVE_FORWARD)
