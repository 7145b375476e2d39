import Devices

/// `--disk PATH[,ro]`: a raw image the guest sees as /dev/vda, /dev/vdb, ...
public struct DiskConfiguration: Sendable, Equatable {
    public var path: String
    public var readOnly: Bool

    public init(path: String, readOnly: Bool = false) {
        self.path = path
        self.readOnly = readOnly
    }

    /// Parses `PATH[,ro|,rw]`.
    public init(argument: String) throws(MachineError) {
        var parts = argument.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var readOnly = false
        while parts.count > 1, let flag = parts.last, flag == "ro" || flag == "rw" {
            readOnly = flag == "ro"
            parts.removeLast()
        }
        let path = parts.joined(separator: ",")
        guard !path.isEmpty else { throw .invalidConfiguration("--disk needs a path: --disk PATH[,ro]") }
        self.init(path: path, readOnly: readOnly)
    }
}

/// `--net tap=NAME[,mac=MAC][,ip=ADDRESS/PREFIX][,gw=ADDRESS]`: a virtio-net
/// device on a TAP. With `ip`, the guest kernel configures the interface itself
/// (its `ip=` parameter), so no guest tooling is needed.
public struct NetworkConfiguration: Sendable, Equatable {
    public var tap: String
    public var mac: MACAddress?
    public var address: IPv4Address?
    public var prefixLength = 24
    public var gateway: IPv4Address?

    public init(tap: String) { self.tap = tap }

    public init(argument: String) throws(MachineError) {
        var tap: String?
        var result = NetworkConfiguration(tap: "")
        for item in argument.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { throw .invalidConfiguration("--net: '\(item)' is not KEY=VALUE") }
            switch pair[0] {
            case "tap": tap = pair[1]
            case "mac":
                guard let mac = MACAddress(pair[1]) else {
                    throw .invalidConfiguration("--net: '\(pair[1])' is not a unicast MAC address (like 06:00:ac:10:00:02)")
                }
                result.mac = mac
            case "ip":
                let parts = pair[1].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard let address = IPv4Address(parts[0]) else { throw .invalidConfiguration("--net: '\(parts[0])' is not an IPv4 address") }
                result.address = address
                if parts.count == 2 {
                    guard let prefix = Int(parts[1]), (1...32).contains(prefix) else {
                        throw .invalidConfiguration("--net: '/\(parts[1])' is not a prefix length (1–32)")
                    }
                    result.prefixLength = prefix
                }
            case "gw":
                guard let gateway = IPv4Address(pair[1]) else { throw .invalidConfiguration("--net: '\(pair[1])' is not an IPv4 address") }
                result.gateway = gateway
            default:
                throw .invalidConfiguration("--net: unknown key '\(pair[0])' (tap, mac, ip, gw)")
            }
        }
        guard let tap, !tap.isEmpty else { throw .invalidConfiguration("--net needs a TAP: --net tap=NAME[,mac=MAC][,ip=A.B.C.D/N][,gw=A.B.C.D]") }
        // What Linux accepts as an interface name (dev_valid_name), checked before any VM exists.
        guard tap.utf8.count < 16, tap != ".", tap != "..", !tap.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace }) else {
            throw .invalidConfiguration("--net: '\(tap)' is not a valid interface name (at most 15 bytes, no '/', ':' or spaces)")
        }
        result.tap = tap
        self = result
    }

    /// Checks what holds across interfaces: the kernel's `ip=` parameter
    /// configures one, so at most one may ask for an address.
    public static func validate(_ networks: [NetworkConfiguration]) throws(MachineError) {
        guard networks.filter({ $0.address != nil }).count <= 1 else {
            throw .invalidConfiguration("--net: ip= can configure one interface only (the kernel's ip= parameter takes one)")
        }
    }

    /// The kernel's `ip=` parameter for this interface (IP_PNP, static, no autoconfiguration).
    public func kernelParameter(interface: String) -> String? {
        guard let address else { return nil }
        let mask = prefixLength == 0 ? 0 : UInt32.max << (32 - UInt32(prefixLength))
        let netmask = IPv4Address(value: mask)
        return "ip=\(address)::\(gateway.map { "\($0)" } ?? ""):\(netmask)::\(interface):off"
    }
}

/// A dotted-quad IPv4 address.
public struct IPv4Address: Sendable, Equatable, CustomStringConvertible {
    public let value: UInt32

    public init(value: UInt32) { self.value = value }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    public var description: String {
        (0..<4).map { String(value >> (24 - 8 * UInt32($0)) & 0xFF) }.joined(separator: ".")
    }
}

/// `--vsock cid=N,uds=PATH`: a virtio-vsock device. The guest has CID `cid`
/// (3 or more); host programs reach its ports through the Unix socket `uds`
/// (`CONNECT <port>` first), and its connections to the host (CID 2) port P
/// arrive at the Unix socket `<uds>_P` (Firecracker's hybrid scheme).
public struct VsockConfiguration: Sendable, Equatable {
    public var guestCID: UInt64
    public var path: String

    public init(guestCID: UInt64, path: String) {
        self.guestCID = guestCID
        self.path = path
    }

    public init(argument: String) throws(MachineError) {
        var cid: UInt64?
        var path: String?
        for item in argument.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { throw .invalidConfiguration("--vsock: '\(item)' is not KEY=VALUE") }
            switch pair[0] {
            case "cid":
                guard let value = UInt64(pair[1]) else { throw .invalidConfiguration("--vsock: cid '\(pair[1])' is not a number") }
                cid = value
            case "uds": path = pair[1]
            default: throw .invalidConfiguration("--vsock: unknown key '\(pair[0])' (cid, uds)")
            }
        }
        guard let cid, let path, !path.isEmpty else { throw .invalidConfiguration("--vsock needs both: --vsock cid=N,uds=PATH") }
        self.init(guestCID: cid, path: path)
        try validate()
    }

    /// CIDs 0–2 name the hypervisor, loopback and the host; 2^32-1 is VMADDR_CID_ANY.
    /// The path, and `<path>_<port>` for the largest port, must fit a socket address.
    public func validate() throws(MachineError) {
        guard guestCID >= VirtioVsock.minimumGuestCID, guestCID < UInt64(UInt32.max) else {
            throw .invalidConfiguration("--vsock: cid \(guestCID) is outside 3–\(UInt32.max - 1)")
        }
        guard path.utf8.count + 11 <= 107 else {
            throw .invalidConfiguration("--vsock: uds path \(path) is too long for a Unix socket address (at most 96 bytes, leaving room for _PORT)")
        }
    }
}
