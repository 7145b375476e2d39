import Devices
import Glibc
import Synchronization
import Host

/// Standard input into a guest UART, on the event loop: no thread of its
/// own and no polling. stdin is read when epoll says it is readable (a
/// regular file or /dev/null, which epoll cannot watch, is read as it is
/// taken), and what the UART's buffer cannot take waits until the guest has
/// read everything it holds (`Serial16550.whenReceiveDrained`); meanwhile
/// stdin is not watched, so a fast producer stalls in its own pipe instead
/// of in Skiff's memory.
final class InputRelay: Sendable {
    /// How the relay treats what it reads.
    enum Style {
        /// A terminal the user types into: raw mode, and Ctrl-a x detaches
        /// (Ctrl-a Ctrl-a sends one Ctrl-a). `skiff boot`, and `skiff run -t`.
        case interactive
        /// A byte stream with an end: `StandardInputFraming`, end of input sent. `skiff run -i`.
        case framed
    }

    private struct State {
        var pending: [UInt8] = []
        var escaped = false
        var finished = false
        var started = false
        /// epoll watches the input (false: a regular file, read as it is taken).
        var pollable = true
    }

    private let fd: Int32
    private let serial: Serial16550
    private let style: Style
    private let escapes: Bool
    private let detach: @Sendable () -> Void
    private let loop: EventLoop
    /// Signalled by the UART when the guest drained it: send what waits.
    private let drained: EventFD
    private let state = Mutex(State())

    /// `escape`: Ctrl-a x detaches on a terminal (off where the caller has its own way out).
    init(from fd: Int32 = STDIN_FILENO, to serial: Serial16550, style: Style, escape: Bool = true,
         loop: EventLoop, detach: @escaping @Sendable () -> Void) throws(MachineError) {
        self.fd = fd
        self.serial = serial
        self.style = style
        self.detach = detach
        self.loop = loop
        let isTerminal = style == .interactive && isatty(fd) == 1
        escapes = isTerminal && escape
        drained = try EventFD.make()
        if isTerminal { TerminalMode.enterRaw() }
    }

    /// Starts relaying, once the guest listens (a UART's FIFO is cleared when
    /// the guest opens it, so earlier bytes would be lost). Any thread; once.
    func start() throws(MachineError) {
        guard !state.withLock({ started in defer { started.started = true }; return started.started }) else { return }
        let drained = self.drained
        serial.whenReceiveDrained { drained.signal() }
        do {
            try loop.register(drained.fd) { [self] in
                drained.drain()
                pump()
            }
        } catch {
            throw MachineError(error)
        }
        do {
            try loop.register(fd) { [self] in readable() }
        } catch where error.errno == EPERM {
            state.withLock { $0.pollable = false }
            drained.signal() // the loop reads the file as the guest takes it
        } catch {
            throw MachineError(error)
        }
    }

    /// stdin is readable: one read (it cannot block), then deliver.
    private func readable() {
        readChunk()
        pump()
    }

    /// Delivers what waits; reads on while the guest takes everything and
    /// stdin is a file epoll cannot watch; watches stdin only while nothing waits.
    private func pump() {
        while true {
            let (blocked, more) = state.withLock { state -> (Bool, Bool) in
                if !state.pending.isEmpty {
                    let accepted = serial.receive(state.pending)
                    state.pending.removeFirst(accepted)
                }
                let blocked = !state.pending.isEmpty
                if state.pollable && !state.finished { loop.watch(fd, !blocked) }
                return (blocked, !blocked && !state.pollable && !state.finished)
            }
            guard !blocked, more else { return }
            readChunk()
        }
    }

    private func readChunk() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { space in retryingInterrupts { read(fd, space.baseAddress!, space.count) } }
        var detaching = false
        state.withLock { state in
            guard !state.finished else { return }
            guard count > 0 else {
                state.finished = true
                if state.pollable { loop.unregister(fd) }
                if style == .framed { state.pending += StandardInputFraming.endOfInput }
                return
            }
            if style == .framed {
                state.pending += StandardInputFraming.encode(buffer[0..<count])
                return
            }
            for byte in buffer[0..<count] {
                if escapes && state.escaped {
                    state.escaped = false
                    if byte == UInt8(ascii: "x") { detaching = true; break }
                    state.pending.append(byte)
                } else if escapes && byte == 0x01 {
                    state.escaped = true
                } else {
                    state.pending.append(byte)
                }
            }
            if detaching {
                state.finished = true
                if state.pollable { loop.unregister(fd) }
            }
        }
        if detaching { detach() }
    }
}
