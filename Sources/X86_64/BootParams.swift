/// `struct boot_params` (the zero page) of the Linux x86 boot protocol, built
/// byte by byte at the offsets Documentation/x86/zero-page.rst gives.
public struct BootParams: Equatable, Sendable {
    public static let size = 4096

    enum Offset {
        static let extRamdiskImage = 0x0C0
        static let extRamdiskSize = 0x0C4
        static let extCmdLinePtr = 0x0C8
        static let e820Entries = 0x1E8
        static let setupHeader = 0x1F1
        static let bootFlag = 0x1FE
        static let header = 0x202
        static let version = 0x206
        static let typeOfLoader = 0x210
        static let loadFlags = 0x211
        static let ramdiskImage = 0x218
        static let ramdiskSize = 0x21C
        static let cmdLinePtr = 0x228
        static let kernelAlignment = 0x230
        static let cmdlineSize = 0x238
        static let e820Table = 0x2D0
    }

    /// "Undefined" boot loader: we have no assigned id.
    static let loaderUndefined: UInt8 = 0xFF
    static let loadedHigh: UInt8 = 0x01

    private var writer = ByteWriter(count: BootParams.size)
    public var bytes: [UInt8] { writer.bytes }

    /// Starts from a bzImage's setup header, or from the fields a vmlinux needs.
    public init(setupHeader: [UInt8]? = nil) {
        if let setupHeader {
            writer.put(setupHeader.prefix(Self.size - Offset.setupHeader), at: Offset.setupHeader)
        } else {
            writer.put(UInt16(0xAA55), at: Offset.bootFlag)
            writer.put(BzImage.headerMagic, at: Offset.header)
            writer.put(UInt16(0x020F), at: Offset.version)
            writer.put(UInt32(X86Layout.defaultKernelAddress), at: Offset.kernelAlignment)
            writer.put(UInt32(X86Layout.defaultCommandLineLimit), at: Offset.cmdlineSize)
        }
        writer.put(Self.loaderUndefined, at: Offset.typeOfLoader)
        writer.put(bytes[Offset.loadFlags] | Self.loadedHigh, at: Offset.loadFlags)
    }

    public mutating func setCommandLine(address: UInt64) {
        writer.put(UInt32(truncatingIfNeeded: address), at: Offset.cmdLinePtr)
        writer.put(UInt32(truncatingIfNeeded: address >> 32), at: Offset.extCmdLinePtr)
    }

    public mutating func setInitrd(address: UInt64, size: UInt64) {
        writer.put(UInt32(truncatingIfNeeded: address), at: Offset.ramdiskImage)
        writer.put(UInt32(truncatingIfNeeded: size), at: Offset.ramdiskSize)
        writer.put(UInt32(truncatingIfNeeded: address >> 32), at: Offset.extRamdiskImage)
        writer.put(UInt32(truncatingIfNeeded: size >> 32), at: Offset.extRamdiskSize)
    }

    public mutating func setMemoryMap(_ map: E820Map) {
        let entries = map.entries.prefix(E820Map.capacity)
        writer.put(UInt8(entries.count), at: Offset.e820Entries)
        for (index, entry) in entries.enumerated() {
            let base = Offset.e820Table + index * 20
            writer.put(entry.address, at: base)
            writer.put(entry.size, at: base + 8)
            writer.put(entry.kind.rawValue, at: base + 16)
        }
    }
}
