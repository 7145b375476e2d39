import Memory

extension GuestMemory {
    /// Guest RAM of `size` bytes laid out as on a PC: from 0 up to the MMIO
    /// hole below 4 GiB, and the rest from 4 GiB up (`X86Layout`).
    public static func x86(size: Int) throws -> GuestMemory {
        let low = min(UInt64(size), X86Layout.mmioHoleStart)
        var layout: [(guestAddress: UInt64, size: Int)] = [(0, Int(low))]
        if UInt64(size) > low {
            layout.append((X86Layout.mmioHoleEnd, size - Int(low)))
        }
        return try GuestMemory(layout: layout)
    }
}
