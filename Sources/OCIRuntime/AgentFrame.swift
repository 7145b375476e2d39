/// Frames of the guest agent's exec sessions (guest/init/agent.h): one kind
/// byte, a 32-bit big-endian length, the payload. The two files must stay in step.
public enum AgentFrame {
    public static let port: UInt32 = 1024
    public static let maximumPayload = 65536

    public enum Kind: UInt8, Sendable {
        // Host → guest.
        case spec = 0x52 // 'R'
        case standardInput = 0x49 // 'I'
        case standardInputEnd = 0x45 // 'E'
        case signal = 0x53 // 'S'
        case window = 0x57 // 'W'
        // Guest → host.
        case started = 0x50 // 'P'
        case standardOutput = 0x4F // 'O'
        case standardError = 0x65 // 'e'
        case exit = 0x58 // 'X'
        case error = 0x21 // '!'
    }

    public static func encode(_ kind: Kind, _ payload: [UInt8] = []) -> [UInt8] {
        let length = UInt32(payload.count)
        return [kind.rawValue, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + payload
    }

    public static func number(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    public static func window(rows: UInt16, columns: UInt16) -> [UInt8] {
        encode(.window, [UInt8(rows >> 8), UInt8(rows & 0xFF), UInt8(columns >> 8), UInt8(columns & 0xFF)])
    }

    /// Splits a byte stream into frames as it arrives.
    public struct Reader: Sendable {
        public enum Problem: Error, Equatable, CustomStringConvertible {
            case tooLong(Int)
            case unknownKind(UInt8)
            public var description: String {
                switch self {
                case let .tooLong(length): return "the guest agent sent a frame of \(length) bytes (at most \(AgentFrame.maximumPayload))"
                case let .unknownKind(kind): return "the guest agent sent a frame of unknown kind \(kind)"
                }
            }
        }

        private var buffer: [UInt8] = []
        public init() {}

        public mutating func append<Bytes: Sequence<UInt8>>(_ bytes: Bytes) { buffer.append(contentsOf: bytes) }

        /// The next whole frame, nil until one has arrived.
        public mutating func next() throws(Problem) -> (Kind, [UInt8])? {
            guard buffer.count >= 5 else { return nil }
            let length = Int(buffer[1]) << 24 | Int(buffer[2]) << 16 | Int(buffer[3]) << 8 | Int(buffer[4])
            guard length <= AgentFrame.maximumPayload else { throw .tooLong(length) }
            guard let kind = Kind(rawValue: buffer[0]) else { throw .unknownKind(buffer[0]) }
            guard buffer.count >= 5 + length else { return nil }
            let payload = Array(buffer[5..<5 + length])
            buffer.removeFirst(5 + length)
            return (kind, payload)
        }
    }

    /// A 4-byte payload as a number; nil for another length.
    public static func value(_ payload: [UInt8]) -> UInt32? {
        guard payload.count == 4 else { return nil }
        return payload.reduce(0) { $0 << 8 | UInt32($1) }
    }
}
