/// Identity-mapped page tables for entering a 64-bit kernel: 2 MiB pages
/// covering the guest's RAM below 4 GiB, in whole GiB (at most
/// `X86Layout.identityMappedGiB`). Linux replaces them within its first
/// instructions; they only need to cover where it starts, its boot_params,
/// command line and initrd, which all lie in that RAM. A small guest gets
/// one page directory rather than four: each table page is a page the VMM
/// writes, and faults in, at every boot (Firecracker maps 1 GiB).
public enum PageTables {
    static let present: UInt64 = 0x1
    static let writable: UInt64 = 0x2
    static let largePage: UInt64 = 0x80

    /// The GiB to map for RAM ending at `ramTop` (its highest address below 4 GiB).
    public static func gibibytes(coveringRAMUpTo ramTop: UInt64) -> Int {
        min(X86Layout.identityMappedGiB, max(1, Int((ramTop + (1 << 30) - 1) >> 30)))
    }

    /// (guest address, bytes) of every table page, PML4 first: `gibibytes`
    /// GiB identity-mapped (1 to `X86Layout.identityMappedGiB`).
    public static func build(gibibytes: Int = X86Layout.identityMappedGiB) -> [(address: UInt64, bytes: [UInt8])] {
        precondition((1...X86Layout.identityMappedGiB).contains(gibibytes))
        var pml4 = ByteWriter(count: 4096)
        pml4.put(X86Layout.pdpt | present | writable, at: 0)
        var pdpt = ByteWriter(count: 4096)
        var pages: [(UInt64, [UInt8])] = [(X86Layout.pml4, []), (X86Layout.pdpt, [])]
        for gib in 0..<gibibytes {
            let directoryAddress = X86Layout.pageDirectories + UInt64(gib) * 4096
            pdpt.put(directoryAddress | present | writable, at: gib * 8)
            var directory = ByteWriter(count: 4096)
            for entry in 0..<512 {
                let physical = UInt64(gib) << 30 | UInt64(entry) << 21
                directory.put(physical | present | writable | largePage, at: entry * 8)
            }
            pages.append((directoryAddress, directory.bytes))
        }
        pages[0].1 = pml4.bytes
        pages[1].1 = pdpt.bytes
        return pages.map { (address: $0.0, bytes: $0.1) }
    }
}
