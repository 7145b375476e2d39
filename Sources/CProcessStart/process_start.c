// The Swift runtime's crash backtracer, kept off in `skiff` and `skiff-oci`.
//
// At load, a constructor in the Swift runtime arms its backtracer: on a
// crash it runs `swift-backtrace`, looked up relative to the executable's
// path as argv[0] gives it. Run from PATH, argv[0] is the bare name, so the
// lookup is relative to the *current directory*: a
// `./libexec/swift/linux/swift-backtrace` there was executed, as skiff's
// user (often root), the first time skiff crashed or was sent SIGSEGV, and
// skiff then hung in the backtracer. A VMM's crash must not run a file
// someone else may have put in its working directory (an OCI runtime's is
// the bundle). So unless the user sets SWIFT_BACKTRACE (to ask for
// backtraces, say with an absolute swift-backtrace=PATH), the runtime sees
// it set to "off": this constructor runs before the runtime's (lld places
// prioritised .init_array entries first) with an environment that has the
// setting added, and `main` puts the process's own environment back
// (cprocessstart_restore_environment), so that nothing skiff starts
// inherits it. The setting also names a path that cannot exist (beneath
// /dev/null), which spares each start the search for swift-backtrace.
//
// The runtime finds argv by walking back from `environ` to the initial
// stack; with `environ` elsewhere it would find none, so the constructor
// hands it argv itself (glibc passes argc, argv and envp to constructors).
//
// To find that stack, the runtime's argv grabber (a constructor of its
// CommandLine.cpp) reads all of /proc/self/maps with fopen, fgets and
// sscanf: about 0.1 ms of every start here, for an argv this constructor
// has already handed over. So the executable defines fopen (which the
// statically linked runtime then calls; libc's own calls are unaffected):
// between this constructor and `main`, and once, it answers an open of
// /proc/self/maps with ENOENT, and the grabber gives up at once. Any other
// open, and any later one, is libc's fopen64 (the same function).
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "CProcessStart.h"

// The Swift runtime's entry for supplying argv (CommandLine.arguments); it
// has the Swift calling convention, which for these arguments is C's.
extern void _swift_stdlib_overrideUnsafeArgvArgc(char **argv, int argc) __attribute__((swiftcall));

static char *const backtracerOff = "SWIFT_BACKTRACE=enable=no,swift-backtrace=/dev/null/none";
static char **processEnvironment;
static char **startEnvironment;
/// Set while the runtime's constructors run (see above).
static int sparingStackSearch;

FILE *fopen(const char *path, const char *mode) {
    if (sparingStackSearch && strcmp(path, "/proc/self/maps") == 0) {
        sparingStackSearch = 0;
        errno = ENOENT;
        return NULL;
    }
    return fopen64(path, mode);
}

__attribute__((constructor(101)))
static void keepSwiftBacktracerOff(int argc, char **argv, char **envp) {
    (void)envp;
    _swift_stdlib_overrideUnsafeArgvArgc(argv, argc);
    sparingStackSearch = 1;
    if (getenv("SWIFT_BACKTRACE") != NULL) return;
    size_t count = 0;
    while (environ[count] != NULL) count++;
    char **extended = malloc((count + 2) * sizeof(char *));
    if (extended == NULL) return;
    memcpy(extended, environ, count * sizeof(char *));
    extended[count] = backtracerOff;
    extended[count + 1] = NULL;
    processEnvironment = environ;
    startEnvironment = extended;
    environ = extended;
}

void cprocessstart_restore_environment(void) {
    sparingStackSearch = 0;
    if (startEnvironment == NULL) return;
    if (environ == startEnvironment) {
        environ = processEnvironment;
        free(startEnvironment);
    } else {
        // Changed since (setenv copies the array): take the setting out.
        unsetenv("SWIFT_BACKTRACE");
    }
    startEnvironment = NULL;
}
