import Glibc
import Host

/// Skiff's log: leveled lines on standard error, `skiff: warning: message
/// key=value`, each written whole by one write(2) (lines from the vCPU, device
/// and main threads never interleave; no stdio buffer is shared between them,
/// and nothing is read from disk, which a seccomp-confined thread could not).
///
/// Why not swift-log: its Logger has task-local (async) entry points, and
/// linking them brings Swift's concurrency runtime and Dispatch into every
/// executable: 45 page faults, 1 MiB and 0.25 ms at every start (issue 11),
/// for a VMM that uses no concurrency runtime at all. The surface kept is the
/// part Skiff used: levels, a threshold, a label and key-value metadata.
public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
        case trace, debug, info, notice, warning, error, critical

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

        public var description: String {
            switch self {
            case .trace: "trace"
            case .debug: "debug"
            case .info: "info"
            case .notice: "notice"
            case .warning: "warning"
            case .error: "error"
            case .critical: "critical"
            }
        }
    }

    /// Who is speaking: the first word of each line ("skiff", "skiff-oci").
    public var label: String
    /// Lines below this level are not written (their text is never built).
    public var logLevel: Level
    /// Where finished lines go; standard error unless a test captures them.
    private let sink: @Sendable (String) -> Void

    public init(label: String, logLevel: Level = .info) {
        self.init(label: label, logLevel: logLevel) { writeErrorLine($0) }
    }

    /// A logger whose lines (without their newline) go to `sink`.
    public init(label: String, logLevel: Level = .info, sink: @escaping @Sendable (String) -> Void) {
        (self.label, self.logLevel, self.sink) = (label, logLevel, sink)
    }

    public func log(level: Level, _ message: @autoclosure () -> String,
                    metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        guard level >= logLevel else { return }
        var line = label + ": "
        if level != .info { line += level.description + ": " }
        line += message()
        for (key, value) in metadata() { line += " " + key + "=" + value }
        sink(line)
    }

    public func trace(_ message: @autoclosure () -> String, metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(level: .trace, message(), metadata: metadata())
    }
    public func debug(_ message: @autoclosure () -> String, metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(level: .debug, message(), metadata: metadata())
    }
    public func info(_ message: @autoclosure () -> String, metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(level: .info, message(), metadata: metadata())
    }
    public func notice(_ message: @autoclosure () -> String, metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(level: .notice, message(), metadata: metadata())
    }
    public func warning(_ message: @autoclosure () -> String, metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(level: .warning, message(), metadata: metadata())
    }
    public func error(_ message: @autoclosure () -> String, metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(level: .error, message(), metadata: metadata())
    }
    public func critical(_ message: @autoclosure () -> String, metadata: @autoclosure () -> KeyValuePairs<String, String> = [:]) {
        log(level: .critical, message(), metadata: metadata())
    }
}
