import Testing
@testable import Memory

@Suite struct GuestMemoryTests {
    @Test func readsAndWritesLittleEndian() throws {
        let memory = try GuestMemory(layout: [(0, 0x2000)])
        try memory.write(UInt32(0x1122_3344), at: 0x10)
        #expect(try memory.readBytes(at: 0x10, count: 4) == [0x44, 0x33, 0x22, 0x11])
        #expect(try memory.read(UInt16.self, at: 0x11) == 0x2233)
    }

    @Test func rejectsAccessesOutsideRAM() throws {
        let memory = try GuestMemory(layout: [(0, 0x1000), (0x3000, 0x1000)])
        #expect(throws: GuestMemoryError.outOfBounds(address: 0xFFF, length: 2)) { try memory.read(UInt16.self, at: 0xFFF) }
        // The gap between regions is not RAM, and an access may not straddle it.
        #expect(!memory.contains(address: 0x1000, length: 1))
        #expect(!memory.contains(address: 0x2FFF, length: 2))
        #expect(memory.contains(address: 0x3000, length: 0x1000))
        // Address arithmetic that would wrap around is refused, not wrapped.
        #expect(!memory.contains(address: UInt64.max - 1, length: 4))
        #expect(!memory.contains(address: 0, length: -1))
    }

    @Test func rejectsBadLayouts() {
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: [(0, 100)]) }
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: [(0, 0x2000), (0x1000, 0x1000)]) }
    }
}
