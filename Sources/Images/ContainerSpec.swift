/// What the container's process is: argv, environment, directory, identity,
/// hostname and terminal. Built from the image's defaults and `skiff run`'s
/// flags exactly as `docker run` builds it, before anything boots, so that a
/// wrong flag is an error in milliseconds rather than after a boot.
public struct ContainerSpec: Sendable, Equatable {
    public var arguments: [String]
    public var environment: [String]
    public var workingDirectory: String
    public var identity: UserDatabase.Identity
    public var hostname: String
    public var terminal: Bool
    public var interactive: Bool

    public init(arguments: [String], environment: [String], workingDirectory: String, identity: UserDatabase.Identity,
                hostname: String, terminal: Bool, interactive: Bool) {
        self.arguments = arguments; self.environment = environment; self.workingDirectory = workingDirectory
        self.identity = identity; self.hostname = hostname; self.terminal = terminal; self.interactive = interactive
    }

    /// What the user asked for on the command line.
    public struct Options: Sendable, Equatable {
        /// `--entrypoint`: replaces the image's Entrypoint and drops its Cmd; "" clears it.
        public var entrypoint: String?
        /// Arguments after the image: they replace Cmd.
        public var arguments: [String] = []
        /// `-e KEY=VALUE`, or `-e KEY` to pass the host's value through.
        public var environment: [String] = []
        public var workingDirectory: String?
        public var user: String?
        public var hostname: String?
        public var terminal = false
        public var interactive = false
        public init() {}
    }

    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public static func resolve(_ defaults: ImageConfiguration.RunDefaults, options: Options, users: UserDatabase,
                               hostEnvironment: [String: String], defaultHostname: String) throws(ImageError) -> ContainerSpec {
        let entrypoint: [String]
        if let override = options.entrypoint {
            entrypoint = override.isEmpty ? [] : [override]
        } else {
            entrypoint = defaults.Entrypoint ?? []
        }
        let command = !options.arguments.isEmpty ? options.arguments
            : options.entrypoint == nil ? (defaults.Cmd ?? []) : []
        let arguments = entrypoint + command
        guard let first = arguments.first, !first.isEmpty else {
            throw .invalidRunSpec("no command specified: the image has no Entrypoint or Cmd; give one after the image")
        }

        let directory = options.workingDirectory ?? (defaults.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/")
        guard directory.hasPrefix("/") else {
            throw .invalidRunSpec("the working directory '\(directory)' is invalid, it needs to be an absolute path")
        }
        let identity = try users.resolve(options.user ?? defaults.User ?? "")
        let hostname = options.hostname ?? defaultHostname
        guard !hostname.isEmpty, hostname.utf8.count <= 64, !hostname.contains(where: { $0 == "\0" || $0 == " " || $0 == "/" }) else {
            throw .invalidRunSpec("invalid hostname '\(hostname)'")
        }

        // Later entries override earlier ones by name; order of first appearance is kept.
        var environment = Environment()
        environment.set("PATH=" + defaultPath)
        environment.set("HOSTNAME=" + hostname)
        for entry in defaults.Env ?? [] { environment.set(entry) }
        for entry in options.environment {
            if entry.contains("=") {
                guard !entry.hasPrefix("=") else { throw .invalidRunSpec("invalid environment variable '\(entry)'") }
                environment.set(entry)
            } else if let value = hostEnvironment[entry] {
                environment.set(entry + "=" + value)
            }
        }
        if options.terminal && environment.value(of: "TERM") == nil { environment.set("TERM=xterm") }
        if environment.value(of: "HOME") == nil { environment.set("HOME=" + (identity.home.isEmpty ? "/" : identity.home)) }
        for entry in arguments + environment.entries where entry.contains("\0") {
            throw .invalidRunSpec("a NUL byte in an argument or environment entry ('\(entry.split(separator: "\0").joined(separator: "\\0"))')")
        }

        return ContainerSpec(arguments: arguments, environment: environment.entries, workingDirectory: directory,
                             identity: identity, hostname: hostname, terminal: options.terminal, interactive: options.interactive)
    }

    /// KEY=VALUE entries with override-by-key.
    struct Environment {
        private(set) var entries: [String] = []

        mutating func set(_ entry: String) {
            let key = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            if let index = entries.firstIndex(where: { $0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0] == key }) {
                entries[index] = entry
            } else {
                entries.append(entry)
            }
        }

        func value(of key: String) -> String? {
            entries.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
    }
}
