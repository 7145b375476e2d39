import CSystem
import Glibc
import Host

/// The host side of virtio-vsock as Firecracker's "hybrid vsock" defines it:
/// the guest's stream sockets become Unix stream sockets on the host.
///
/// - Host → guest: a program connects to the listening socket at `path`,
///   writes `CONNECT <port>\n`, and once the guest accepted reads
///   `OK <host port>\n`; from then on the socket carries the stream.
/// - Guest → host: a guest `connect(VMADDR_CID_HOST, port)` becomes a
///   connection to the Unix socket `<path>_<port>`.
///
/// Everything here runs on the device loop, under the device's lock, and
/// never blocks: every socket is non-blocking and watched by this backend's
/// own epoll instance (edge-triggered), whose descriptor the loop watches.
/// What the guest sends is checked against the connection it names, and
/// credit (§5.10.6.3) bounds what is buffered for a slow host reader: a
/// guest that sends beyond it, or names no connection, gets RST and breaks
/// only its own stream. Unchecked Sendable: its one owner, `VirtioVsock`,
/// touches it only under its lock.
public final class VsockUnixBackend: @unchecked Sendable {
    /// What this side can buffer per connection (advertised as buf_alloc).
    public static let bufferAllocation: UInt32 = 256 * 1024
    /// Connections (pending CONNECT lines included) at most; more are refused.
    public static let maximumConnections = 256
    /// Control packets waiting for receive buffers at most; a guest that
    /// provokes more without reading them loses the oldest.
    static let maximumPendingControl = 4096
    /// The first host port given to host-initiated connections (Firecracker's choice too).
    static let firstHostPort: UInt32 = 1 << 30

    struct Key: Hashable {
        let hostPort: UInt32
        let guestPort: UInt32
    }

    struct Connection {
        let fd: Int32
        var established: Bool
        var peerBufferAllocation: UInt32
        var peerForwardCount: UInt32
        /// Payload bytes sent to the guest (its rx_cnt as we count it).
        var sentToGuest: UInt32 = 0
        /// Payload bytes from the guest written to the host socket (our fwd_cnt).
        var forwarded: UInt32 = 0
        var forwardAdvertised: UInt32 = 0
        var toHost: [UInt8] = []
        /// The host socket reported input (or its end) not yet read.
        var hostReadable = false
        var hostEnded = false
        var guestSendsNoMore = false
        var guestReceivesNoMore = false

        var credit: Int {
            Int(peerBufferAllocation) - Int(sentToGuest &- peerForwardCount)
        }
    }

    /// A host client that has not finished its `CONNECT <port>` line.
    struct PendingClient {
        let fd: Int32
    }

    public let path: String
    public let guestCID: UInt64
    let listener: Int32
    let epoll: Int32
    var connections: [Key: Connection] = [:]
    var keyByFD: [Int32: Key] = [:]
    var pending: [Int32: PendingClient] = [:]
    var control: [VsockHeader] = []
    var nextHostPort = firstHostPort
    /// The connection whose data went to the guest last: the next search starts after it.
    var lastServed: Key?
    public private(set) var counters = Counters()

    public struct Counters: Equatable, Sendable {
        public var opened = 0, reset = 0, bytesToGuest = 0, bytesToHost = 0, refused = 0
    }

    public enum SetupError: Error, CustomStringConvertible {
        case pathTooLong(String)
        case system(String, Int32)
        public var description: String {
            switch self {
            case let .pathTooLong(path): return "vsock socket path \(path) is longer than a Unix socket address holds (107 bytes)"
            case let .system(what, error): return "vsock: \(what): \(String(cString: strerror(error)))"
            }
        }
    }

    /// A non-blocking listening Unix socket at `path`: opened before the VM
    /// (and before a jail, which keeps the descriptor and not the path).
    /// A stale socket left at `path` is replaced; any other file is not.
    public static func listen(at path: String) throws(SetupError) -> Int32 {
        guard unixSocketAddress(path) != nil else { throw .pathTooLong(path) }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { throw .system("\(path) exists and is not a socket", EEXIST) }
            unlink(path)
        }
        switch listenOnUnixSocket(path, backlog: 64, nonBlocking: true) {
        case let .success(fd): return fd
        case let .failure(failure): throw .system("binding \(path)", failure.errno)
        }
    }

    /// Takes over `listener` (from `listen(at:)`); `path` names it for guest-initiated connections.
    public init(listener: Int32, path: String, guestCID: UInt64) throws(SetupError) {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw .system("epoll_create1", errno) }
        self.listener = listener
        self.epoll = epoll
        self.path = path
        self.guestCID = guestCID
        guard watch(listener) else {
            let error = errno
            close(epoll)
            throw .system("epoll_ctl", error)
        }
    }

    deinit {
        dropAll()
        close(listener)
        close(epoll)
    }

    /// The descriptor the device loop watches: readable while a socket here has news.
    public var pollFD: Int32 { epoll }

    public var connectionCount: Int { connections.count }

    /// Closes every connection (a device reset, or a restore: their streams
    /// belonged to a guest that no longer exists). The listener stays.
    public func dropAll() {
        for connection in connections.values { close(connection.fd) }
        for client in pending.values { close(client.fd) }
        connections = [:]
        keyByFD = [:]
        pending = [:]
        control = []
    }

    private func watch(_ fd: Int32) -> Bool {
        var event = epoll_event()
        event.events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLOUT.rawValue) | UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLET.rawValue)
        event.data.fd = fd
        return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0
    }

    // MARK: Host sockets

    /// Takes in what the host sockets report: new clients, CONNECT lines,
    /// input to forward (read later, as the guest has room), room to write.
    public func pollHost() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = events.withUnsafeMutableBufferPointer { list in retryingInterrupts { epoll_wait(epoll, list.baseAddress, 64, 0) } }
            guard count > 0 else { return }
            for event in events[0..<Int(count)] {
                let fd = event.data.fd
                if fd == listener {
                    acceptClients()
                } else if pending[fd] != nil {
                    readConnectLine(fd)
                } else if let key = keyByFD[fd] {
                    if event.events & (UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLHUP.rawValue)) != 0 {
                        connections[key]?.hostReadable = true
                        if connections[key]?.established == false { hostLeftBeforeAccept(key) }
                    }
                    if event.events & (UInt32(EPOLLOUT.rawValue) | UInt32(EPOLLERR.rawValue)) != 0 { flush(key) }
                }
            }
            if count < 64 { return }
        }
    }

    private func acceptClients() {
        while true {
            let fd = retryingInterrupts { csystem_accept_nonblocking(listener) }
            guard fd >= 0 else {
                if errno == ECONNABORTED { continue } // that client gave up; the next may not have
                return
            }
            guard connections.count + pending.count < Self.maximumConnections, watch(fd) else {
                counters.refused += 1
                close(fd)
                continue
            }
            pending[fd] = PendingClient(fd: fd)
            readConnectLine(fd)
        }
    }

    /// `CONNECT <port>\n`: peeked, so that bytes the client sends after the
    /// line stay in the socket for the guest.
    private func readConnectLine(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 32)
        let peeked = buffer.withUnsafeMutableBytes { space in retryingInterrupts { recv(fd, space.baseAddress, space.count, Int32(MSG_PEEK)) } }
        if peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
        guard peeked > 0 else { return dropPending(fd) }
        guard let newline = buffer[0..<peeked].firstIndex(of: 0x0A) else {
            if peeked == buffer.count { dropPending(fd) } // no line in 32 bytes: not a client of ours
            return
        }
        let line = String(decoding: buffer[0..<newline], as: UTF8.self)
        _ = buffer.withUnsafeMutableBytes { space in retryingInterrupts { read(fd, space.baseAddress, newline + 1) } }
        let words = line.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 2, words[0] == "CONNECT", let port = UInt32(words[1]) else { return dropPending(fd) }
        pending[fd] = nil
        let key = Key(hostPort: allocateHostPort(), guestPort: port)
        connections[key] = Connection(fd: fd, established: false, peerBufferAllocation: 0, peerForwardCount: 0)
        keyByFD[fd] = key
        enqueue(header(key, .request))
    }

    private func dropPending(_ fd: Int32) {
        pending[fd] = nil
        close(fd)
    }

    private func allocateHostPort() -> UInt32 {
        while true {
            let port = nextHostPort
            nextHostPort = nextHostPort == UInt32.max ? Self.firstHostPort : nextHostPort + 1
            if !connections.keys.contains(where: { $0.hostPort == port }) { return port }
        }
    }

    /// The client hung up while the guest had not yet answered its request.
    private func hostLeftBeforeAccept(_ key: Key) {
        guard let connection = connections[key] else { return }
        var probe: UInt8 = 0
        let result = recv(connection.fd, &probe, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if result == 0 || (result < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { resetConnection(key) }
    }

    /// Writes what waits for the host socket; afterwards, tells the guest
    /// about the room made (credit) when a quarter of the buffer was freed.
    private func flush(_ key: Key) {
        guard var connection = connections[key] else { return }
        while !connection.toHost.isEmpty {
            let written = Self.send(connection.fd, connection.toHost)
            if written < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                connections[key] = connection
                return resetConnection(key)
            }
            connection.toHost.removeFirst(written)
            connection.forwarded &+= UInt32(written)
            counters.bytesToHost += written
        }
        if connection.toHost.isEmpty && connection.guestSendsNoMore { _ = shutdown(connection.fd, Int32(SHUT_WR)) }
        connections[key] = connection
        if connection.forwarded &- connection.forwardAdvertised >= Self.bufferAllocation / 4 { enqueue(header(key, .creditUpdate)) }
    }

    // MARK: Packets from the guest

    /// One packet the driver sent (tx queue), its payload beside it.
    public func receive(_ packet: VsockHeader, payload: [UInt8]) {
        // Addressed from elsewhere, or to another type: not ours to answer as a connection.
        guard packet.sourceCID == guestCID else { return }
        let key = Key(hostPort: packet.destinationPort, guestPort: packet.sourcePort)
        guard packet.destinationCID == VsockHeader.hostCID, packet.type == VsockHeader.streamType,
              let operation = packet.knownOperation, operation != .invalid else {
            // Nonsense on a live stream ends that stream; otherwise it is only answered.
            return connections[key] != nil ? resetConnection(key) : answerReset(packet)
        }
        if operation == .request { return connectToHost(key, packet) }
        guard var connection = connections[key] else { return answerReset(packet) }
        connection.peerBufferAllocation = packet.bufferAllocation
        connection.peerForwardCount = packet.forwardCount
        connections[key] = connection
        switch operation {
        case .response:
            guard !connection.established else { return resetConnection(key) }
            connections[key]?.established = true
            let line = Array("OK \(key.hostPort)\n".utf8)
            let written = Self.send(connection.fd, line)
            guard written == line.count else { return resetConnection(key) }
            counters.opened += 1
        case .reset:
            _ = Self.send(connection.fd, connection.toHost) // best effort
            remove(key)
        case .shutdown:
            if packet.flags & VsockHeader.Shutdown.send != 0 { connections[key]?.guestSendsNoMore = true }
            if packet.flags & VsockHeader.Shutdown.receive != 0 { connections[key]?.guestReceivesNoMore = true }
            flush(key)
            if let now = connections[key], now.guestSendsNoMore && (now.guestReceivesNoMore || now.hostEnded) {
                resetConnection(key) // both ways closed: RST ends it, as the spec asks
            }
        case .readWrite:
            guard connection.established, !connection.guestSendsNoMore,
                  connection.toHost.count + payload.count <= Int(Self.bufferAllocation) else {
                return resetConnection(key) // beyond the credit we gave, or on a stream not open
            }
            connections[key]?.toHost.append(contentsOf: payload)
            flush(key)
        case .creditRequest:
            enqueue(header(key, .creditUpdate))
        case .creditUpdate, .request, .invalid:
            break // the credit was taken above
        }
    }

    /// A guest `connect(VMADDR_CID_HOST, port)`: to the Unix socket `<path>_<port>`.
    private func connectToHost(_ key: Key, _ packet: VsockHeader) {
        guard connections[key] == nil, connections.count + pending.count < Self.maximumConnections,
              let (address, length) = unixSocketAddress("\(path)_\(key.hostPort)") else {
            counters.refused += 1
            return answerReset(packet)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return answerReset(packet) }
        var target = address
        let connected = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in retryingInterrupts { connect(fd, socketAddress, length) } }
        }
        guard connected == 0, watch(fd) else {
            close(fd)
            counters.refused += 1
            return answerReset(packet)
        }
        connections[key] = Connection(fd: fd, established: true, peerBufferAllocation: packet.bufferAllocation,
                                      peerForwardCount: packet.forwardCount)
        keyByFD[fd] = key
        counters.opened += 1
        enqueue(header(key, .response))
    }

    /// RST for a packet that names no connection (never in answer to a RST).
    private func answerReset(_ packet: VsockHeader) {
        guard packet.operation != VsockHeader.Operation.reset.rawValue else { return }
        enqueue(VsockHeader(sourceCID: VsockHeader.hostCID, destinationCID: packet.sourceCID, sourcePort: packet.destinationPort,
                            destinationPort: packet.sourcePort, operation: .reset))
    }

    /// Ends a connection from this side: RST to the guest, host socket closed.
    private func resetConnection(_ key: Key) {
        guard connections[key] != nil else { return }
        enqueue(header(key, .reset))
        counters.reset += 1
        remove(key)
    }

    private func remove(_ key: Key) {
        guard let connection = connections.removeValue(forKey: key) else { return }
        keyByFD[connection.fd] = nil
        close(connection.fd)
    }

    /// send(MSG_NOSIGNAL): a host program that closed its end is an EPIPE
    /// for this connection, never a SIGPIPE for the VMM.
    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { buffer in
            retryingInterrupts { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        }
    }

    private func header(_ key: Key, _ operation: VsockHeader.Operation, length: UInt32 = 0, flags: UInt32 = 0) -> VsockHeader {
        let forwarded = connections[key]?.forwarded ?? 0
        connections[key]?.forwardAdvertised = forwarded
        return VsockHeader(sourceCID: VsockHeader.hostCID, destinationCID: guestCID, sourcePort: key.hostPort,
                           destinationPort: key.guestPort, operation: operation, length: length, flags: flags,
                           bufferAllocation: Self.bufferAllocation, forwardCount: forwarded)
    }

    private func enqueue(_ packet: VsockHeader) {
        if control.count >= Self.maximumPendingControl { control.removeFirst() }
        control.append(packet)
    }

    // MARK: Packets to the guest

    /// The next packet for a receive buffer with room for `maximumPayload`
    /// bytes: a control packet first, else data from a host socket the guest
    /// has credit for (or the news that it ended). Nil when nothing waits.
    public func nextPacket(maximumPayload: Int) -> (VsockHeader, [UInt8])? {
        if !control.isEmpty { return (control.removeFirst(), []) }
        // Round robin: one busy stream does not starve the others.
        var keys = Array(connections.keys)
        if let last = lastServed, let index = keys.firstIndex(of: last) { keys = Array(keys[(index + 1)...] + keys[...index]) }
        for key in keys {
            guard let connection = connections[key], connection.established, connection.hostReadable, !connection.hostEnded else { continue }
            if connection.guestReceivesNoMore {
                connections[key]?.hostReadable = false
                continue
            }
            let room = min(connection.credit, maximumPayload, 64 * 1024)
            guard room > 0 else { continue } // until the guest's credit update
            var buffer = [UInt8](repeating: 0, count: room)
            let count = buffer.withUnsafeMutableBytes { space in retryingInterrupts { read(connection.fd, space.baseAddress, space.count) } }
            if count > 0 {
                lastServed = key
                connections[key]?.sentToGuest &+= UInt32(count)
                counters.bytesToGuest += count
                return (header(key, .readWrite, length: UInt32(count)), Array(buffer[0..<count]))
            }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                connections[key]?.hostReadable = false
                continue
            }
            if count < 0 {
                resetConnection(key)
                return (control.removeFirst(), [])
            }
            // End of the host's stream: the guest reads EOF after what it has.
            connections[key]?.hostEnded = true
            if connection.guestSendsNoMore {
                resetConnection(key)
                return (control.removeFirst(), [])
            }
            return (header(key, .shutdown, flags: VsockHeader.Shutdown.send), [])
        }
        return nil
    }
}
