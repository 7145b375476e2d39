import Platform

/// A compressed Linux kernel (bzImage) booted through the 64-bit boot protocol:
/// the protected-mode part is loaded at its preferred address and entered at
/// load address + 0x200, with the setup header copied into boot_params.
public struct BzImage: Equatable, Sendable {
    /// Boot protocol 2.12 introduced xloadflags, which says whether a 64-bit entry exists.
    static let minimumProtocol: UInt16 = 0x020C
    static let headerMagic: UInt32 = 0x5372_6448 // "HdrS"
    static let bootFlag: UInt16 = 0xAA55
    static let xloadflagsKernel64: UInt16 = 0x1

    public let protocolVersion: UInt16
    /// The setup header as the file has it (offset 0x1F1 up to its end), for boot_params.
    public let setupHeader: [UInt8]
    /// Offset in the file where the protected-mode kernel starts.
    public let kernelOffset: Int
    public let preferredAddress: UInt64
    public let kernelAlignment: UInt32
    /// Memory the kernel needs from its load address while it decompresses itself.
    public let initSize: UInt32
    public let commandLineLimit: UInt32
    public let initrdAddressMax: UInt32

    /// Whether `bytes` carry a Linux setup header at all.
    public static func matches(_ bytes: [UInt8]) -> Bool {
        let reader = ByteReader(bytes: bytes, file: "")
        return (try? reader.integer(UInt32.self, at: 0x202, "")) == headerMagic
    }

    public init(bytes: [UInt8], file: String) throws(BootError) {
        let reader = ByteReader(bytes: bytes, file: file)
        guard try reader.integer(UInt16.self, at: 0x1FE, "boot flag") == Self.bootFlag,
              try reader.integer(UInt32.self, at: 0x202, "header magic") == Self.headerMagic else {
            throw BootError(file: file, "not a Linux bzImage (no boot flag 0xAA55 and \"HdrS\" magic)")
        }
        protocolVersion = try reader.integer(UInt16.self, at: 0x206, "boot protocol version")
        guard protocolVersion >= Self.minimumProtocol else {
            throw BootError(file: file, "boot protocol \(protocolVersion >> 8).\(protocolVersion & 0xFF) is older than 2.12, which a 64-bit entry needs")
        }
        let xloadflags = try reader.integer(UInt16.self, at: 0x236, "xloadflags")
        guard xloadflags & Self.xloadflagsKernel64 != 0 else {
            throw BootError(file: file, "kernel has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)")
        }
        let headerEnd = 0x202 + Int(bytes[0x201])
        guard headerEnd <= bytes.count else { throw BootError(file: file, "truncated setup header") }
        setupHeader = Array(bytes[0x1F1..<headerEnd])
        var setupSectors = Int(bytes[0x1F1])
        if setupSectors == 0 { setupSectors = 4 }
        kernelOffset = (setupSectors + 1) * 512
        guard kernelOffset < bytes.count else {
            throw BootError(file: file, "truncated: the protected-mode kernel should start at offset \(kernelOffset), the file has \(bytes.count) bytes")
        }
        preferredAddress = try reader.integer(UInt64.self, at: 0x258, "pref_address")
        kernelAlignment = try reader.integer(UInt32.self, at: 0x230, "kernel_alignment")
        initSize = try reader.integer(UInt32.self, at: 0x260, "init_size")
        commandLineLimit = try reader.integer(UInt32.self, at: 0x238, "cmdline_size")
        initrdAddressMax = try reader.integer(UInt32.self, at: 0x22C, "initrd_addr_max")
    }
}
