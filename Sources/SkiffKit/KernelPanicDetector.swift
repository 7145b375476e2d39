import Synchronization

/// Watches the kernel console's bytes for Linux's panic line. With `panic=-1`
/// a panicking kernel reboots at once, which would otherwise look like a
/// clean reset; the line is printed at KERN_EMERG, so `quiet` does not hide it.
final class KernelPanicDetector: Sendable {
    static let pattern = Array("Kernel panic - not syncing".utf8)

    /// Bytes of `pattern` matched so far; only the console's vCPU thread writes it.
    private let matched = Atomic<Int>(0)
    private let seen = Atomic<Bool>(false)

    var panicked: Bool { seen.load(ordering: .acquiring) }

    /// Feeds one console byte. The pattern's first byte occurs in it only
    /// once, so on a mismatch matching restarts at this byte.
    func feed(_ byte: UInt8) {
        var count = matched.load(ordering: .relaxed)
        if byte == Self.pattern[count] {
            count += 1
        } else {
            count = byte == Self.pattern[0] ? 1 : 0
        }
        if count == Self.pattern.count {
            seen.store(true, ordering: .releasing)
            count = 0
        }
        matched.store(count, ordering: .relaxed)
    }
}
