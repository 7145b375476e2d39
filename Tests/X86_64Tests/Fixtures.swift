@testable import X86_64

/// A minimal x86_64 ELF executable with the given loadable segments.
func makeELF(entry: UInt64, segments: [(address: UInt64, bytes: [UInt8], memorySize: Int)],
             machine: UInt16 = 62, type: UInt16 = 2) -> [UInt8] {
    var writer = ByteWriter(count: 64)
    writer.put([0x7F, 0x45, 0x4C, 0x46, 2, 1, 1], at: 0)
    writer.put(type, at: 16)
    writer.put(machine, at: 18)
    writer.put(UInt32(1), at: 20)
    writer.put(entry, at: 24)
    writer.put(UInt64(64), at: 32)             // e_phoff
    writer.put(UInt16(64), at: 52)             // e_ehsize
    writer.put(UInt16(56), at: 54)             // e_phentsize
    writer.put(UInt16(segments.count), at: 56)
    var dataOffset = 64 + 56 * segments.count
    for (index, segment) in segments.enumerated() {
        let base = 64 + index * 56
        writer.put(UInt32(1), at: base)          // PT_LOAD
        writer.put(UInt64(dataOffset), at: base + 8)
        writer.put(segment.address | 0xFFFF_FFFF_8000_0000, at: base + 16)
        writer.put(segment.address, at: base + 24)
        writer.put(UInt64(segment.bytes.count), at: base + 32)
        writer.put(UInt64(segment.memorySize), at: base + 40)
        writer.put(segment.bytes, at: dataOffset)
        dataOffset += segment.bytes.count
    }
    return writer.bytes
}

/// The first sectors of a bzImage: setup header fields that matter, then a "kernel".
func makeBzImage(version: UInt16 = 0x020F, xloadflags: UInt16 = 0x1, setupSectors: UInt8 = 1,
                 kernel: [UInt8] = [UInt8](repeating: 0x90, count: 4096)) -> [UInt8] {
    var writer = ByteWriter(count: (Int(setupSectors) + 1) * 512)
    writer.put(setupSectors, at: 0x1F1)
    writer.put(UInt16(0xAA55), at: 0x1FE)
    writer.put(UInt8(0x66), at: 0x201)                   // header runs to 0x268
    writer.put(UInt32(0x5372_6448), at: 0x202)
    writer.put(version, at: 0x206)
    writer.put(UInt8(0x01), at: 0x211)                   // LOADED_HIGH
    writer.put(UInt32(0x7FFF_FFFF), at: 0x22C)           // initrd_addr_max
    writer.put(UInt32(0x20_0000), at: 0x230)             // kernel_alignment
    writer.put(xloadflags, at: 0x236)
    writer.put(UInt32(2048), at: 0x238)                  // cmdline_size
    writer.put(UInt64(0x100_0000), at: 0x258)            // pref_address
    writer.put(UInt32(0x10_0000), at: 0x260)             // init_size
    writer.put(kernel, at: writer.bytes.count)
    return writer.bytes
}

func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
}
func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
}
