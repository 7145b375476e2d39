import Platform

/// An uncompressed x86_64 Linux kernel (`vmlinux`, an ELF executable), entered
/// at its 64-bit entry point. Loading it directly skips the bzImage
/// decompressor, which matters where guest kernel code is interpreted.
public struct ELFKernel: Equatable, Sendable {
    public struct Segment: Equatable, Sendable {
        /// Offset of the segment's bytes in the file.
        public let fileOffset: Int
        public let fileSize: Int
        /// Bytes in memory; beyond `fileSize` they are zero (.bss).
        public let memorySize: Int
        public let physicalAddress: UInt64
    }

    public let entry: UInt64
    public let segments: [Segment]

    static let machineX86_64: UInt16 = 62
    static let typeExecutable: UInt16 = 2
    static let programLoad: UInt32 = 1

    /// Whether `bytes` start like an ELF file at all.
    public static func matches(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x7F && bytes[1] == 0x45 && bytes[2] == 0x4C && bytes[3] == 0x46
    }

    public init(bytes: [UInt8], file: String) throws(BootError) {
        let reader = ByteReader(bytes: bytes, file: file)
        guard Self.matches(bytes) else { throw BootError(file: file, "not an ELF file") }
        guard bytes.count >= 64 else { throw BootError(file: file, "truncated ELF header (\(bytes.count) bytes)") }
        guard bytes[4] == 2 else { throw BootError(file: file, "not a 64-bit ELF file") }
        guard bytes[5] == 1 else { throw BootError(file: file, "not a little-endian ELF file") }
        let type = try reader.integer(UInt16.self, at: 16, "e_type")
        let machine = try reader.integer(UInt16.self, at: 18, "e_machine")
        guard machine == Self.machineX86_64 else {
            throw BootError(file: file, "ELF machine \(machine) is not x86_64 (62)")
        }
        guard type == Self.typeExecutable else { throw BootError(file: file, "ELF type \(type) is not an executable") }
        entry = try reader.integer(UInt64.self, at: 24, "e_entry")
        let headerOffset = try reader.integer(UInt64.self, at: 32, "e_phoff")
        let headerSize = Int(try reader.integer(UInt16.self, at: 54, "e_phentsize"))
        let headerCount = Int(try reader.integer(UInt16.self, at: 56, "e_phnum"))
        guard headerSize >= 56 else { throw BootError(file: file, "ELF program header size \(headerSize) is too small") }
        guard headerOffset < UInt64(bytes.count), headerCount > 0 else {
            throw BootError(file: file, "ELF program headers lie outside the file")
        }
        var segments: [Segment] = []
        for index in 0..<headerCount {
            let base = Int(headerOffset) + index * headerSize
            guard try reader.integer(UInt32.self, at: base, "program header \(index)") == Self.programLoad else { continue }
            let offset = try reader.integer(UInt64.self, at: base + 8, "p_offset")
            let physical = try reader.integer(UInt64.self, at: base + 24, "p_paddr")
            let fileSize = try reader.integer(UInt64.self, at: base + 32, "p_filesz")
            let memorySize = try reader.integer(UInt64.self, at: base + 40, "p_memsz")
            let (end, overflow) = offset.addingReportingOverflow(fileSize)
            guard !overflow else {
                throw BootError(file: file, "segment \(index): offset \(offset) plus size \(fileSize) is past any file")
            }
            guard end <= UInt64(bytes.count) else {
                throw BootError(file: file, "truncated: segment \(index) needs bytes up to \(end), the file has \(bytes.count)")
            }
            guard memorySize >= fileSize, memorySize < 1 << 32 else {
                throw BootError(file: file, "segment \(index) has an impossible size (\(memorySize) in memory, \(fileSize) in file)")
            }
            guard !physical.addingReportingOverflow(memorySize).overflow else {
                throw BootError(file: file, "segment \(index) at 0x\(String(physical, radix: 16)) runs past the end of the address space")
            }
            segments.append(Segment(fileOffset: Int(offset), fileSize: Int(fileSize),
                                    memorySize: Int(memorySize), physicalAddress: physical))
        }
        guard !segments.isEmpty else { throw BootError(file: file, "ELF file has no loadable segment") }
        self.segments = segments
    }

    /// Lowest and highest physical address the kernel occupies.
    public var physicalRange: Range<UInt64> {
        let low = segments.map(\.physicalAddress).min()!
        let high = segments.map { $0.physicalAddress + UInt64($0.memorySize) }.max()!
        return low..<high
    }
}
