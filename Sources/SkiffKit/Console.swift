import Devices
import Glibc
import Synchronization
import Host
import Seccomp

/// Where the guest's serial console goes: `--console stdio|none|file:PATH`.
public enum ConsoleMode: Sendable, Equatable {
    case stdio
    case none
    case file(String)
    /// Kept in memory (the last `Console.captureLimit` bytes), for a report
    /// when something fails: `skiff run`, where stdout is the container's.
    case capture

    public init?(argument: String) {
        switch argument {
        case "stdio": self = .stdio
        case "none": self = .none
        default:
            guard argument.hasPrefix("file:"), argument.count > 5 else { return nil }
            self = .file(String(argument.dropFirst(5)))
        }
    }
}

/// The host end of the serial console's output (its input: `InputRelay`).
final class Console: Sendable {
    let outputFD: Int32
    private let ownsOutput: Bool
    private let capturing: Bool
    private let captured = Mutex<[UInt8]>([])
    static let captureLimit = 64 << 10

    /// Writes the console's output from the event loop (nil: captured or dropped).
    private let relay: OutputRelay?

    init(_ mode: ConsoleMode, loop: EventLoop) throws(MachineError) {
        capturing = mode == .capture
        switch mode {
        case .capture:
            outputFD = -1; ownsOutput = false
        case .stdio:
            outputFD = STDOUT_FILENO; ownsOutput = false
        case .none:
            outputFD = -1; ownsOutput = false
        case let .file(path):
            // Without blocking: a FIFO nobody reads is an error (ENXIO), not a
            // wait; once open, writes block as they would on a file.
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0o644)
            guard fd >= 0 else {
                let error = errno
                if error == ENXIO { throw .invalidConfiguration("--console file:\(path): a FIFO with no reader") }
                throw .unreadable(path: path, errno: error)
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
            outputFD = fd; ownsOutput = true
        }
        relay = outputFD >= 0 ? try OutputRelay(fd: outputFD, loop: loop) : nil
    }

    deinit { if ownsOutput { close(outputFD) } }

    /// Writes what the relay still holds (after the event loop stopped).
    func flush() { relay?.flush() }

    /// The captured console output (empty unless the mode is `.capture`).
    var capturedOutput: [UInt8] { captured.withLock { $0 } }

    func write(_ byte: UInt8) {
        if capturing {
            captured.withLock { buffer in
                if buffer.count >= Self.captureLimit { buffer.removeFirst(Self.captureLimit / 4) }
                buffer.append(byte)
            }
            return
        }
        relay?.append(byte)
    }
}

/// Raw mode for a terminal on standard input, and its restoration on every
/// way out: normal return, fatal signals, and `exit`.
public enum TerminalMode {
    nonisolated(unsafe) private static var saved: termios?
    private static let lock = Mutex(())

    static func enterRaw() {
        lock.withLock { _ in
            guard saved == nil else { return }
            var original = termios()
            guard tcgetattr(STDIN_FILENO, &original) == 0 else { return }
            saved = original
            Seccomp.rememberTerminal(original) // the seccomp reporter puts it back too
            var raw = original
            cfmakeraw(&raw)
            // Output stays raw too: the guest's tty layer already turns "\n" into "\r\n".
            tcsetattr(STDIN_FILENO, TCSANOW, &raw)
            atexit { TerminalMode.restoreUnlocked() }
        }
    }

    /// Puts the terminal back as it was; harmless if it was never changed.
    public static func restore() {
        lock.withLock { _ in restoreUnlocked() }
    }

    private static func restoreUnlocked() {
        guard var original = saved else { return }
        tcsetattr(STDIN_FILENO, TCSANOW, &original)
        saved = nil
        Seccomp.rememberTerminal(nil)
    }
}
