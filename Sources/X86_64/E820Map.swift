import Memory

/// The BIOS e820 memory map Linux reads from boot_params: which physical
/// ranges are RAM and which are reserved.
public struct E820Map: Equatable, Sendable {
    public enum Kind: UInt32, Sendable {
        case ram = 1
        case reserved = 2
    }

    public struct Entry: Equatable, Sendable {
        public let address: UInt64
        public let size: UInt64
        public let kind: Kind
    }

    public private(set) var entries: [Entry] = []

    /// boot_params has room for 128 entries.
    public static let capacity = 128

    public init() {}

    public mutating func add(_ address: UInt64, size: UInt64, _ kind: Kind) {
        guard size > 0 else { return }
        entries.append(Entry(address: address, size: size, kind: kind))
        entries.sort { $0.address < $1.address }
    }

    /// The PC map of `memory`: base memory below the EBDA, the EBDA and BIOS
    /// area reserved, then RAM from 1 MiB (split by the MMIO hole if large).
    public static func pc(for memory: GuestMemory) -> E820Map {
        var map = E820Map()
        for region in memory.regions {
            if region.guestAddress == 0 {
                map.add(0, size: min(X86Layout.ebda, UInt64(region.size)), .ram)
                map.add(X86Layout.ebda, size: X86Layout.highMemory - X86Layout.ebda, .reserved)
                if region.guestEnd > X86Layout.highMemory {
                    map.add(X86Layout.highMemory, size: region.guestEnd - X86Layout.highMemory, .ram)
                }
            } else {
                map.add(region.guestAddress, size: UInt64(region.size), .ram)
            }
        }
        return map
    }
}
