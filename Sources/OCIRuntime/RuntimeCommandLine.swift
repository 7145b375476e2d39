/// The command line as containerd's runc shim and podman's conmon write it:
/// global options, a command, its options and arguments. runc's parser
/// (urfave/cli) takes `--name value`, `--name=value` and single-dash long
/// names (`-bundle`), and known short aliases; so does this one, and anything
/// it does not know is an error naming it, never ignored.
public struct RuntimeCommandLine: Equatable, Sendable {
    public var root: String?
    public var log: String?
    public var logFormat = "text"
    public var debug = false
    public var systemdCgroup = false
    public var command: String?
    /// The command's options, by long name ("bundle", "pid-file", ...).
    public var options: [String: String] = [:]
    public var flags: Set<String> = []
    public var arguments: [String] = []

    public struct Problem: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    static let globalValues = ["root", "log", "log-format", "criu", "rootless"]
    static let globalFlags = ["debug", "systemd-cgroup", "help", "version"]

    /// Per command: options that take a value, boolean flags, short aliases.
    static let commands: [String: (values: Set<String>, flags: Set<String>, aliases: [String: String])] = [
        "create": (["bundle", "pid-file", "console-socket", "preserve-fds", "pidfd-socket"],
                   ["no-pivot", "no-new-keyring"], ["b": "bundle"]),
        "run": (["bundle", "pid-file", "console-socket", "preserve-fds"], ["no-pivot", "no-new-keyring", "detach", "keep"],
                ["b": "bundle", "d": "detach"]),
        "start": ([], [], [:]),
        "state": ([], [], [:]),
        "kill": ([], ["all"], ["a": "all"]),
        "delete": ([], ["force"], ["f": "force"]),
        "features": ([], [], [:]),
        "ps": (["format"], [], ["f": "format"]),
        "exec": (["process", "pid-file", "console-socket", "cwd", "user", "env", "preserve-fds"], ["detach", "tty", "no-new-privs"],
                 ["p": "process", "d": "detach", "t": "tty", "u": "user", "e": "env"]),
        "list": (["format"], ["quiet"], ["f": "format", "q": "quiet"]),
        // Internal: the process `create` starts, whose PID is the container's.
        "monitor": (["console-socket", "cgroup", "memory"], [], [:]),
    ]

    public init(parsing argv: [String]) throws(Problem) {
        var index = 0
        func value(for name: String, inline: String?) throws(Problem) -> String {
            if let inline { return inline }
            index += 1
            guard index < argv.count else { throw Problem(message: "option --\(name) needs a value") }
            return argv[index]
        }
        // Global options, up to the command.
        while index < argv.count {
            let word = argv[index]
            guard word.hasPrefix("-"), word != "-" else { break }
            let (name, inline) = Self.split(word)
            if name == "v" || name == "version" { flags.insert("version"); index += 1; continue }
            if name == "h" || name == "help" { flags.insert("help"); index += 1; continue }
            if Self.globalValues.contains(name) {
                let text = try value(for: name, inline: inline)
                switch name {
                case "root": root = text
                case "log": log = text
                case "log-format":
                    guard ["text", "json"].contains(text) else { throw Problem(message: "--log-format must be text or json, not '\(text)'") }
                    logFormat = text
                default: break // --criu, --rootless: accepted, meaningless for a VM
                }
            } else if Self.globalFlags.contains(name) {
                if name == "debug" { debug = true } else if name == "systemd-cgroup" { systemdCgroup = true }
            } else {
                throw Problem(message: "unknown global option '\(word)'")
            }
            index += 1
        }
        guard index < argv.count else { return }
        let command = argv[index]
        guard let spec = Self.commands[command] else { throw Problem(message: "unknown command '\(command)'") }
        self.command = command
        index += 1
        var onlyArguments = false
        while index < argv.count {
            let word = argv[index]
            if onlyArguments || !word.hasPrefix("-") || word == "-" {
                arguments.append(word)
                // `exec ID COMMAND -c ...`: what follows the ID is the command's.
                if command == "exec" { onlyArguments = true }
            } else if word == "--" {
                onlyArguments = true
            } else {
                let (raw, inline) = Self.split(word)
                let name = spec.aliases[raw] ?? raw
                if spec.values.contains(name) {
                    options[name] = try value(for: name, inline: inline)
                } else if spec.flags.contains(name) {
                    flags.insert(name)
                } else if name == "help" || name == "h" {
                    flags.insert("help")
                } else {
                    throw Problem(message: "\(command): unknown option '\(word)'")
                }
            }
            index += 1
        }
    }

    /// "--name=value" → ("name", "value"); "-name" and "--name" → ("name", nil).
    static func split(_ word: String) -> (String, String?) {
        let body = word.hasPrefix("--") ? word.dropFirst(2) : word.dropFirst()
        guard let equals = body.firstIndex(of: "=") else { return (String(body), nil) }
        return (String(body[..<equals]), String(body[body.index(after: equals)...]))
    }
}
