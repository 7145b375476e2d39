import CSystem
import Glibc
import Host

/// The host end of one `exec` session (guest/init/agent.h): reached through
/// the container's vsock socket (`CONNECT 1024`), it sends the process, then
/// relays this process's standard streams and signals to it until the guest
/// reports its exit status. The process that runs this stands for the exec'd
/// process on the host, as the monitor stands for the container's.
enum ExecSession {
    /// The monitor's vsock socket, in the container's directory.
    static let socketName = "vsock.sock"
    /// Signals passed on to the process in the guest (KILL cannot be: it
    /// closes the session, and the guest kills the process then).
    static let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// A stream to the guest agent. The guest may not listen yet for a moment
    /// after `start` (init opens its socket as the process starts): a refusal
    /// is retried for up to `patience` seconds.
    static func connect(directory: String, patience: Double = 10) throws(RuntimeError) -> Int32 {
        let attempts = max(1, Int(patience / 0.05))
        var last = ""
        for _ in 0..<attempts {
            let fd = try ControlSocket.connect(socketName, in: directory)
            let request = Array("CONNECT \(AgentFrame.port)\n".utf8)
            if request.withUnsafeBytes({ writeAll(fd, $0) }) == nil {
                last = ControlSocket.readLine(fd)
                if last.hasPrefix("OK ") { return fd }
            }
            close(fd)
            usleep(50_000)
        }
        throw .container("the container's guest agent does not answer\(last.isEmpty ? "" : " ('\(last)')"); is the container running?")
    }

    /// Runs the session on `connection` and returns the process's status as
    /// a shell reports it (128+N: killed by signal N). `started` hears the
    /// guest PID once the process runs, or why it could not start.
    static func run(connection: Int32, spec: [UInt8], terminal: Bool,
                    started: (Result<UInt32, RuntimeError>) -> Void) -> Int32 {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in forwarded + [SIGWINCH, SIGPIPE] { sigaddset(&mask, signal) }
        sigprocmask(SIG_BLOCK, &mask, nil)
        sigdelset(&mask, SIGPIPE) // a closed stdout is an EPIPE to ignore, not a death
        let signals = signalfd(-1, &mask, Int32(SFD_CLOEXEC))
        defer { if signals >= 0 { close(signals) } }

        var toldStarted = false
        // Frames for the guest wait here and go out as the connection takes
        // them, while its output is read on: a process that writes much
        // while it reads much (cat) never finds both directions blocked.
        var toGuest: [UInt8] = []
        _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
        func send(_ bytes: [UInt8]) { toGuest += bytes }
        func flush() -> Bool {
            while !toGuest.isEmpty {
                let written = toGuest.withUnsafeBytes { bytes in retryingInterrupts { write(connection, bytes.baseAddress, bytes.count) } }
                if written < 0 { return errno == EAGAIN || errno == EWOULDBLOCK }
                toGuest.removeFirst(written)
            }
            return true
        }
        send(AgentFrame.encode(.spec, spec))
        if terminal, let size = windowSize() { send(size) }

        var reader = AgentFrame.Reader()
        var inputOpen = true
        var buffer = [UInt8](repeating: 0, count: AgentFrame.maximumPayload)
        while true {
            guard flush() else {
                if !toldStarted { started(.failure(.container("the guest agent hung up"))) }
                return 255
            }
            let connectionEvents = POLLIN | (toGuest.isEmpty ? 0 : POLLOUT)
            var polls = [pollfd(fd: connection, events: Int16(connectionEvents), revents: 0), pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            // Input is read only while what was read before has gone out.
            let readInput = inputOpen && toGuest.count < AgentFrame.maximumPayload
            if readInput { polls.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
            guard retryingInterrupts({ poll(&polls, nfds_t(polls.count), -1) }) >= 0 else { return 255 }

            if readInput, polls[2].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { space in retryingInterrupts { read(STDIN_FILENO, space.baseAddress, space.count) } }
                if count > 0 {
                    send(AgentFrame.encode(.standardInput, Array(buffer[0..<count])))
                } else {
                    // EOF (or a terminal that hung up): the process reads its end.
                    inputOpen = false
                    send(AgentFrame.encode(.standardInputEnd))
                }
            }
            if polls[1].revents != 0 {
                var info = signalfd_siginfo()
                if read(signals, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
                    if info.ssi_signo == UInt32(SIGWINCH) {
                        if terminal, let size = windowSize() { send(size) }
                    } else {
                        send(AgentFrame.encode(.signal, [UInt8(truncatingIfNeeded: info.ssi_signo)]))
                    }
                }
            }
            if polls[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let count = buffer.withUnsafeMutableBytes { space in retryingInterrupts { read(connection, space.baseAddress, space.count) } }
                if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { continue }
                guard count > 0 else {
                    if !toldStarted {
                        started(.failure(.container("the guest agent closed the session before the process started")))
                        return 255
                    }
                    // The container ended under it: its processes were killed, as runc's are
                    // when the container's init dies, and the exec'd one reads as killed by KILL.
                    return 128 + SIGKILL
                }
                reader.append(buffer[0..<count])
                do {
                    while let (kind, payload) = try reader.next() {
                        switch kind {
                        case .started:
                            if !toldStarted, let pid = AgentFrame.value(payload) {
                                toldStarted = true
                                started(.success(pid))
                            }
                        case .standardOutput: _ = payload.withUnsafeBytes { writeAll(STDOUT_FILENO, $0) }
                        case .standardError: _ = payload.withUnsafeBytes { writeAll(STDERR_FILENO, $0) }
                        case .exit:
                            return Int32(AgentFrame.value(payload) ?? 255)
                        case .error:
                            let message = String(decoding: payload, as: UTF8.self)
                            if !toldStarted { started(.failure(.container(message))) } else { _ = Array((message + "\n").utf8).withUnsafeBytes { writeAll(STDERR_FILENO, $0) } }
                            return 255
                        default:
                            break
                        }
                    }
                } catch {
                    if !toldStarted { started(.failure(.container("\(error)"))) }
                    return 255
                }
            }
        }
    }

    /// The terminal's size as a frame, when it has one.
    private static func windowSize() -> [UInt8]? {
        var size = winsize()
        guard ioctl(STDIN_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
        return AgentFrame.window(rows: size.ws_row, columns: size.ws_col)
    }
}
