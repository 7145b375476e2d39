import Glibc
import Host

/// Runs a host program (posix_spawn), with its standard output captured and
/// standard error passed through so its progress stays visible.
public enum HostCommand {
    public struct Result {
        public let status: Int32
        public let output: String
    }

    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws(MachineError) -> Result {
        let pipe: (read: Int32, write: Int32)
        do { pipe = try makePipe() } catch { throw MachineError(error) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipe.write, STDOUT_FILENO)
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)

        var env = processEnvironment()
        env.merge(environment) { $1 }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }

        // The child starts with skiff's shutdown signals unblocked and at their
        // defaults (they are blocked here, for ShutdownSignals' thread).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = ShutdownSignals.signalSet()
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid = pid_t()
        let spawned = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(pipe.write)
        guard spawned == 0 else { close(pipe.read); throw .system("cannot run \(arguments[0])", spawned) }
        // If skiff is told to stop, the child (mkfs.ext4 on a big tree) stops with it.
        let child = pid
        let signals = ShutdownSignals.register { _ in
            kill(child, SIGKILL)
            return false
        }
        defer { signals.cancel() }

        let output = readToEnd(pipe.read)
        close(pipe.read)
        return Result(status: waitForChild(pid) ?? 128 + SIGKILL, output: String(decoding: output, as: UTF8.self))
    }
}

/// This process's environment as a dictionary (read from `environ`).
public func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var index = 0
    while let entry = environ[index] {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
        index += 1
    }
    return result
}
