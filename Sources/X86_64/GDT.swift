/// The boot GDT: null, 64-bit code (selector 0x08), data (0x10) and a TSS (0x18),
/// flat over the whole address space, as the 64-bit boot protocol expects.
public enum GDT {
    public struct Descriptor: Equatable, Sendable {
        public let base: UInt32
        /// 20 bits; in 4 KiB units when `granularity`.
        public let limit: UInt32
        /// Access byte (bits 0–7) and flags (bits 12–15), as in the descriptor's bits 40–55.
        public let flags: UInt16

        public var type: UInt8 { UInt8(flags & 0xF) }
        public var system: Bool { flags & 0x10 == 0 }
        public var dpl: UInt8 { UInt8(flags >> 5 & 0x3) }
        public var present: Bool { flags & 0x80 != 0 }
        public var long: Bool { flags & 0x2000 != 0 }
        public var defaultSize: Bool { flags & 0x4000 != 0 }
        public var granularity: Bool { flags & 0x8000 != 0 }
        /// Limit in bytes, as KVM's segment registers hold it.
        public var byteLimit: UInt32 { granularity ? limit << 12 | 0xFFF : limit }

        /// The 8-byte descriptor.
        public var encoded: UInt64 {
            let base = UInt64(base), limit = UInt64(limit), flags = UInt64(flags)
            return (base & 0xFF00_0000) << 32 | (base & 0x00FF_FFFF) << 16 | (limit & 0xFFFF)
                | (limit & 0xF_0000) << 32 | (flags & 0xF0FF) << 40
        }
    }

    public static let code = Descriptor(base: 0, limit: 0xF_FFFF, flags: 0xA09B)
    public static let data = Descriptor(base: 0, limit: 0xF_FFFF, flags: 0xC093)
    public static let tss = Descriptor(base: 0, limit: 0xF_FFFF, flags: 0x808B)
    public static let codeSelector: UInt16 = 0x08
    public static let dataSelector: UInt16 = 0x10
    public static let tssSelector: UInt16 = 0x18

    public static var bytes: [UInt8] {
        var writer = ByteWriter(count: 32)
        for (index, descriptor) in [code, data, tss].enumerated() {
            writer.put(descriptor.encoded, at: (index + 1) * 8)
        }
        return writer.bytes
    }
}
