/* Nettle's SHA-256 (nettle-dev): streamed hashing with the CPU's SHA
   extensions where it has them (its "fat" build picks the routine once, at
   load). Skiff's executables link the static archive (Sources/skiff/link/
   libnettle.so); tests link the shared library. */
#include <nettle/sha2.h>
