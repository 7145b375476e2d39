import Platform

/// An Intel MultiProcessor Specification 1.4 table: how a kernel without ACPI
/// learns the CPUs (by local APIC id), the I/O APIC and the routing of the 16
/// ISA interrupts plus the rest of the I/O APIC's 24 pins. Linux finds the
/// floating pointer by scanning the first KiB of the EBDA, where it is placed.
public struct MPTable: Equatable, Sendable {
    public static let maximumCPUs = 32
    static let ioapicPins = 24
    static let localAPICVersion: UInt8 = 0x14
    static let ioapicVersion: UInt8 = 0x11
    static let specRevision: UInt8 = 4

    public let cpuCount: Int
    public let bytes: [UInt8]

    /// Lays the table out for placement at guest physical `address`.
    public init(cpuCount: Int, address: UInt64 = X86Layout.ebda) throws(BootError) {
        guard (1...Self.maximumCPUs).contains(cpuCount) else {
            throw BootError(file: "--cpus", "\(cpuCount) CPUs is outside 1–\(Self.maximumCPUs)")
        }
        self.cpuCount = cpuCount
        let ioapicID = UInt8(cpuCount)
        var entries = ByteWriter(count: 0)
        var entryCount = 0
        var offset = 0
        func append(_ entry: ByteWriter) {
            entries.put(entry.bytes, at: offset)
            offset += entry.bytes.count
            entryCount += 1
        }
        for cpu in 0..<cpuCount {
            var processor = ByteWriter(count: 20)
            processor.put(UInt8(0), at: 0)                        // entry type: processor
            processor.put(UInt8(cpu), at: 1)                      // local APIC id
            processor.put(Self.localAPICVersion, at: 2)
            processor.put(UInt8(cpu == 0 ? 0x03 : 0x01), at: 3)    // enabled, bootstrap processor
            processor.put(UInt32(0x600), at: 4)                   // CPU signature: family 6
            processor.put(UInt32(0x201), at: 8)                   // features: FPU, APIC
            append(processor)
        }
        var bus = ByteWriter(count: 8)
        bus.put(UInt8(1), at: 0)                                  // entry type: bus
        bus.put(UInt8(0), at: 1)                                  // bus id
        bus.put(Array("ISA   ".utf8), at: 2)
        append(bus)
        var ioapic = ByteWriter(count: 8)
        ioapic.put(UInt8(2), at: 0)                               // entry type: I/O APIC
        ioapic.put(ioapicID, at: 1)
        ioapic.put(Self.ioapicVersion, at: 2)
        ioapic.put(UInt8(1), at: 3)                               // enabled
        ioapic.put(X86Layout.ioapicAddress, at: 4)
        append(ioapic)
        for pin in 0..<Self.ioapicPins {
            var route = ByteWriter(count: 8)
            route.put(UInt8(3), at: 0)                            // entry type: I/O interrupt
            route.put(UInt8(0), at: 1)                            // vectored interrupt
            route.put(UInt16(0), at: 2)                           // polarity and trigger of the bus
            route.put(UInt8(0), at: 4)                            // source bus: ISA
            route.put(UInt8(pin), at: 5)                          // source IRQ
            route.put(ioapicID, at: 6)
            route.put(UInt8(pin), at: 7)                          // I/O APIC pin
            append(route)
        }
        for (kind, pin) in [(UInt8(3), UInt8(0)), (UInt8(1), UInt8(1))] { // ExtINT on LINT0, NMI on LINT1
            var local = ByteWriter(count: 8)
            local.put(UInt8(4), at: 0)                            // entry type: local interrupt
            local.put(kind, at: 1)
            local.put(UInt16(0), at: 2)
            local.put(UInt8(0), at: 4)
            local.put(UInt8(0), at: 5)
            local.put(UInt8(0xFF), at: 6)                         // every local APIC
            local.put(pin, at: 7)
            append(local)
        }

        let floatingSize = 16
        let headerSize = 44
        var table = ByteWriter(count: floatingSize + headerSize)
        // Floating pointer structure.
        table.put(Array("_MP_".utf8), at: 0)
        table.put(UInt32(address) + UInt32(floatingSize), at: 4)  // configuration table address
        table.put(UInt8(1), at: 8)                                // length in 16-byte units
        table.put(Self.specRevision, at: 9)
        table.put(checksum(table.bytes[0..<floatingSize]), at: 10)
        // Configuration table header.
        let header = floatingSize
        table.put(Array("PCMP".utf8), at: header)
        table.put(UInt16(headerSize + entries.bytes.count), at: header + 4)
        table.put(Self.specRevision, at: header + 6)
        table.put(Array("SKIFF   ".utf8), at: header + 8)         // OEM id
        table.put(Array("MICROVM     ".utf8), at: header + 16)    // product id
        table.put(UInt16(entryCount), at: header + 34)
        table.put(X86Layout.localAPICAddress, at: header + 36)
        table.put(entries.bytes, at: header + headerSize)
        table.put(checksum(table.bytes[header...]), at: header + 7)
        bytes = table.bytes
    }
}
