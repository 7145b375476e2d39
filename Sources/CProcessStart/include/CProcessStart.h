#ifndef CPROCESSSTART_H
#define CPROCESSSTART_H

// What `skiff` and `skiff-oci` settle before the Swift runtime starts
// (process_start.c says why). Linked into those two executables only.

/// Takes back what the constructor put into the environment, so that the
/// programs skiff starts (mkfs, scripts, skiff-bench) inherit the user's
/// environment unchanged. Call first thing in `main`.
void cprocessstart_restore_environment(void);

#endif
