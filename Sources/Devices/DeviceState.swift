/// A device's state as bytes, for snapshots: what a restored device needs to
/// carry on exactly where the saved one stopped. Host resources (file
/// descriptors, TAPs, the interrupt wiring) are not state: a restore re-creates
/// them and then sets the state.
public protocol SnapshotDevice: AnyObject {
    /// Called with the device quiesced (no vCPU running, no queue work under way).
    func saveState() -> [UInt8]
    /// Called before any vCPU runs. A state that does not fit the device (a
    /// different queue count, say) is refused, never half-applied.
    func restoreState(_ bytes: [UInt8]) throws(DeviceStateError)
}

/// Why saved device state cannot be applied.
public struct DeviceStateError: Error, Equatable, CustomStringConvertible {
    public let problem: String
    public init(_ problem: String) { self.problem = problem }
    public var description: String { problem }
}

/// Little-endian fields, appended in order; `StateReader` reads them back in the same order.
public struct StateWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
    public mutating func put(_ value: Bool) { put(UInt8(value ? 1 : 0)) }
    /// A length (UInt32), then the bytes.
    public mutating func put(bytes data: some Collection<UInt8>) {
        put(UInt32(data.count))
        bytes += data
    }
}

/// Reads what `StateWriter` wrote; every read checks the length left, so a
/// truncated or foreign state is an error, never a crash.
public struct StateReader {
    private let bytes: [UInt8]
    private var offset = 0
    private let what: String

    public init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    public mutating func get<T: FixedWidthInteger>(_: T.Type = T.self) throws(DeviceStateError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { throw DeviceStateError("\(what): state truncated at byte \(offset)") }
        var value: T = 0
        for index in 0..<size { value |= T(bytes[offset + index]) << (8 * index) }
        offset += size
        return value
    }

    public mutating func getBool() throws(DeviceStateError) -> Bool {
        let value = try get(UInt8.self)
        guard value <= 1 else { throw DeviceStateError("\(what): \(value) where a flag (0 or 1) belongs, at byte \(offset - 1)") }
        return value == 1
    }

    /// Bytes written by `put(bytes:)`, at most `limit` of them.
    public mutating func getBytes(limit: Int) throws(DeviceStateError) -> [UInt8] {
        let count = Int(try get(UInt32.self))
        guard count <= limit else { throw DeviceStateError("\(what): \(count) bytes where at most \(limit) belong") }
        guard bytes.count - offset >= count else { throw DeviceStateError("\(what): state truncated at byte \(offset)") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Refuses trailing bytes: a state written by another device or version.
    public func finish() throws(DeviceStateError) {
        guard offset == bytes.count else { throw DeviceStateError("\(what): \(bytes.count - offset) unexpected bytes at the end") }
    }
}
