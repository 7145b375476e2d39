import CSystem

/// How glibc's malloc is set up in `skiff` and `skiff-oci`, first thing in
/// `main`, before any thread exists: mallopt changes parameters every
/// allocation reads without a lock (glibc documents it MT-unsafe), and
/// called from `Machine.run` while other threads allocated it corrupted the
/// heap (a test process's neighbours crashed in swift_release).
public enum MallocPolicy {
    /// - One arena for every thread: the VMM's threads (signals, vCPUs,
    ///   device I/O) allocate little and rarely at once, and each further
    ///   arena cost a dozen page faults at every start.
    /// - Heaps never trimmed: glibc's malloc, the first time it shrinks a
    ///   thread arena's heap, opens /proc/sys/vm/overcommit_memory
    ///   (check_may_shrink_heap), and a confined vCPU or device thread would
    ///   die of it (seen after a 2 MiB vsock burst in a restored VM, where no
    ///   large boot-time buffer had raised the dynamic trim threshold). The
    ///   VMM's allocations are mostly made at setup; whole heaps are still
    ///   unmapped, and large blocks still mmap'd.
    public static func apply() {
        _ = csystem_malloc_one_arena()
        _ = csystem_malloc_never_trim()
    }
}
