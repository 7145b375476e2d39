import Hypervisor

/// x86's CPU identity: the CPUID table, each entry 28 bytes little-endian
/// (function, index, flags, EAX, EBX, ECX, EDX as UInt32s, KVM's
/// `kvm_cpuid_entry2` without its padding). The bytes are what snapshot
/// format 3 has always stored for a vCPU's "I" section.
extension CPUIdentity {
    static let cpuidEntrySize = 28

    public init(cpuid entries: [CPUIDEntry]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * Self.cpuidEntrySize)
        for entry in entries {
            for value in [entry.function, entry.index, entry.flags, entry.eax, entry.ebx, entry.ecx, entry.edx] {
                withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
            }
        }
        self.init(bytes: bytes)
    }

    /// The CPUID table, nil if the bytes are not one (empty, or not whole entries).
    public var cpuidEntries: [CPUIDEntry]? {
        guard !bytes.isEmpty, bytes.count % Self.cpuidEntrySize == 0 else { return nil }
        return stride(from: 0, to: bytes.count, by: Self.cpuidEntrySize).map { base in
            func value(_ index: Int) -> UInt32 {
                let offset = base + 4 * index
                return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
            }
            return CPUIDEntry(function: value(0), index: value(1), flags: value(2), eax: value(3), ebx: value(4), ecx: value(5), edx: value(6))
        }
    }
}
