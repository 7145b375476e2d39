import Platform

/// Bounds-checked little-endian reads from a file's bytes: a read past the end
/// is a `BootError`, never a trap, because the file is untrusted input.
struct ByteReader {
    let bytes: [UInt8]
    let file: String

    func integer<T: FixedWidthInteger>(_: T.Type = T.self, at offset: Int, _ what: @autoclosure () -> String) throws(BootError) -> T {
        let size = MemoryLayout<T>.size
        guard offset >= 0, offset <= bytes.count - size else {
            throw BootError(file: file, "truncated: \(what()) at offset \(offset) lies past the end (\(bytes.count) bytes)")
        }
        var value: T = 0
        for index in 0..<size { value |= T(bytes[offset + index]) << (8 * index) }
        return value
    }
}

/// Little-endian writes into a byte array that grows as needed.
struct ByteWriter: Equatable, Sendable {
    var bytes: [UInt8]

    init(count: Int) { bytes = [UInt8](repeating: 0, count: count) }

    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        let size = MemoryLayout<T>.size
        if bytes.count < offset + size { bytes += [UInt8](repeating: 0, count: offset + size - bytes.count) }
        for index in 0..<size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    mutating func put(_ data: some Collection<UInt8>, at offset: Int) {
        if bytes.count < offset + data.count { bytes += [UInt8](repeating: 0, count: offset + data.count - bytes.count) }
        bytes.replaceSubrange(offset..<offset + data.count, with: data)
    }
}

/// The byte that makes `bytes` sum to zero modulo 256 (MP table checksums).
func checksum(_ bytes: some Sequence<UInt8>) -> UInt8 {
    0 &- bytes.reduce(0, &+)
}
