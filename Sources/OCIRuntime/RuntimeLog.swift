import Glibc
import Host
import JSON

/// `--log FILE --log-format json|text`: conmon and containerd's shim read the
/// last `error` entry of the log when a command fails, so every failure is
/// written there (and to standard error).
public struct RuntimeLog: Sendable {
    public let path: String?
    public let json: Bool

    public init(path: String?, format: String) {
        self.path = path
        self.json = format == "json"
    }

    public func error(_ message: String) { write("error", message) }
    public func warning(_ message: String) { write("warning", message) }
    /// In the log file only: a monitor's standard error is the container's.
    public func info(_ message: String) { write("info", message, toStandardError: false) }

    func write(_ level: String, _ message: String, toStandardError: Bool = true) {
        if toStandardError { writeErrorLine("skiff-oci: \(level == "error" ? "" : level + ": ")\(message)") }
        guard let path, !path.isEmpty else { return }
        let time = rfc3339Now()
        let entry: String
        if json {
            entry = "{\"level\":\"\(level)\",\"msg\":\(Self.quoted(message)),\"time\":\"\(time)\"}\n"
        } else {
            entry = "time=\"\(time)\" level=\(level) msg=\(Self.quoted(message))\n"
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = Array(entry.utf8).withUnsafeBytes { writeAll(fd, $0) }
        close(fd)
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        String(decoding: JSONWriter.write(.string(text)), as: UTF8.self)
    }
}

/// Signal names and numbers as `kill` takes them: TERM, SIGTERM, 15.
public enum SignalName {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "IOT": SIGABRT,
        "BUS": SIGBUS, "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2,
        "PIPE": SIGPIPE, "ALRM": SIGALRM, "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CONT": SIGCONT,
        "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN, "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU,
        "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO, "POLL": SIGIO,
        "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    public static func parse(_ text: String) -> Int32? {
        if let number = Int32(text) { return (1...64).contains(number) ? number : nil }
        let upper = text.uppercased()
        return names[upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper]
    }
}
