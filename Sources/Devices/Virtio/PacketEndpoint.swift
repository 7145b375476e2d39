import CSystem
import Glibc
import Host

/// Where a network device's Ethernet frames go and come from: a TAP device,
/// or in tests anything that can hold frames.
public protocol PacketEndpoint: Sendable {
    /// Reads one frame into `buffer`; returns its length, or nil if no frame is waiting.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int?
    /// Sends one frame; false if it was dropped.
    func send(_ frame: UnsafeRawBufferPointer) -> Bool
}

/// A TAP interface (IFF_TAP | IFF_NO_PI): whole Ethernet frames, one per read
/// or write, non-blocking so the event loop never waits on it.
public final class TapDevice: PacketEndpoint {
    public enum OpenError: Error, Equatable, CustomStringConvertible {
        case noTunDevice(errno: Int32)
        case invalidName(String)
        case notPermitted(name: String)
        case failed(name: String, errno: Int32)

        public var description: String {
            switch self {
            case let .noTunDevice(errno):
                return "cannot open /dev/net/tun: \(String(cString: strerror(errno))) (is the tun module loaded?)"
            case let .invalidName(name):
                return "'\(name)' is not a valid interface name (1–15 characters, no '/', ':' or spaces)"
            case let .notPermitted(name):
                return "TAP \(name): permission denied. Create it for this user first " +
                    "(ip tuntap add \(name) mode tap user $USER) or run with CAP_NET_ADMIN"
            case let .failed(name, errno):
                return "TAP \(name): \(String(cString: strerror(errno)))"
            }
        }
    }

    public let name: String
    public let fd: Int32

    /// Attaches to the TAP named `name`, creating it if it does not exist
    /// (which needs CAP_NET_ADMIN; attaching to one made for this user does not).
    public init(name: String) throws(OpenError) {
        guard (1...15).contains(name.utf8.count),
              !name.contains(where: { $0 == "/" || $0 == ":" || $0 == " " || $0 == "\0" }) else {
            throw .invalidName(name)
        }
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .noTunDevice(errno: errno) }
        var actual = [CChar](repeating: 0, count: Int(IFNAMSIZ))
        guard csystem_attach_tap(fd, name, &actual) == 0 else {
            let error = errno
            close(fd)
            throw error == EPERM || error == EACCES ? .notPermitted(name: name) : .failed(name: name, errno: error)
        }
        self.fd = fd
        self.name = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { close(fd) }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let count = retryingInterrupts { read(fd, buffer.baseAddress, buffer.count) }
        return count >= 0 ? count : nil
    }

    public func send(_ frame: UnsafeRawBufferPointer) -> Bool {
        // A full queue on the host side drops the frame, as a real link would.
        retryingInterrupts { write(fd, frame.baseAddress, frame.count) } == frame.count
    }
}
