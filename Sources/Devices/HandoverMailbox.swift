import Memory

/// How the VMM hands a waiting guest what only the moment of a run can know:
/// the host's wall-clock time, fresh entropy, and a payload (the run spec, of
/// any size, in chunks). Because a snapshot is taken while the guest waits
/// here, the same path serves a cold boot and every restore of it: the guest
/// cannot tell them apart, and each clone gets its own clock, seed and spec.
///
/// The mailbox is 64 KiB of guest memory the guest's kernel never allocates,
/// where the platform puts it (`DeviceLayout.handoverMailbox`; x86: 0xE0000,
/// inside the BIOS area the e820 map reports as reserved); the guest init
/// reads it through /dev/mem (allowed for reserved pages below 1 MiB even with
/// STRICT_DEVMEM). The guest asks with boot markers: `guestReady` for the
/// first chunk, `handoverMore` for each next one; the VMM writes the chunk
/// before the marker's port write returns. guest/init/handover.h reads it.
///
/// Layout (little-endian): magic "SKIFFHO1" (8), version (u32), chunk length
/// (u32), payload total (u64), chunk offset (u64), CLOCK_REALTIME seconds
/// (i64) and nanoseconds (u32), 4 reserved, 64 bytes of seed, 16 reserved,
/// then the chunk at `headerSize`.
public enum HandoverMailbox {
    public static let size = 64 << 10
    public static let headerSize = 128
    public static let chunkCapacity = size - headerSize
    public static let seedSize = 64
    static let magic = Array("SKIFFHO1".utf8)
    static let version: UInt32 = 1

    public struct Delivery: Sendable, Equatable {
        public var realtimeSeconds: Int64
        public var realtimeNanoseconds: UInt32
        public var seed: [UInt8]
        public init(realtimeSeconds: Int64, realtimeNanoseconds: UInt32, seed: [UInt8]) {
            self.realtimeSeconds = realtimeSeconds
            self.realtimeNanoseconds = realtimeNanoseconds
            self.seed = seed
        }
    }

    /// Writes the chunk of `payload` that starts at `offset` (clamped to its
    /// end), with the time and seed of `delivery`, into the mailbox at guest
    /// physical `address`; returns where the next chunk starts.
    @discardableResult
    public static func write(_ payload: [UInt8], from offset: Int, _ delivery: Delivery,
                             at address: UInt64, into memory: GuestMemory) throws -> Int {
        precondition(delivery.seed.count == seedSize, "the seed is \(seedSize) bytes")
        let start = min(max(offset, 0), payload.count)
        let chunk = payload[start..<min(payload.count, start + chunkCapacity)]
        var header = StateWriter()
        for byte in magic { header.put(byte) }
        header.put(version)
        header.put(UInt32(chunk.count))
        header.put(UInt64(payload.count))
        header.put(UInt64(start))
        header.put(delivery.realtimeSeconds)
        header.put(delivery.realtimeNanoseconds)
        header.put(UInt32(0))
        for byte in delivery.seed { header.put(byte) }
        var bytes = header.bytes
        bytes += [UInt8](repeating: 0, count: headerSize - bytes.count)
        // The chunk first, the header (whose magic says "valid") last.
        try memory.write(bytes: chunk, at: address + UInt64(headerSize))
        try memory.write(bytes: bytes, at: address)
        return start + chunk.count
    }
}
