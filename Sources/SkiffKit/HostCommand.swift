import Glibc
import Host

/// Runs a host program (Host's `spawnProcess`), with its standard output
/// captured and standard error passed through so its progress stays visible.
public enum HostCommand {
    public struct Result {
        public let status: Int32
        public let output: String
    }

    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws(MachineError) -> Result {
        let pipe: (read: Int32, write: Int32)
        do { pipe = try makePipe() } catch { throw MachineError(error) }
        var env = processEnvironment()
        env.merge(environment) { $1 }
        // The child starts with skiff's shutdown signals unblocked and at their
        // defaults (they are blocked here, for ShutdownSignals' thread).
        let pid: pid_t
        do {
            pid = try spawnProcess(arguments, descriptors: [(STDIN_FILENO, .null), (STDOUT_FILENO, .descriptor(pipe.write))],
                                   environment: env.map { "\($0.key)=\($0.value)" }, defaultSignals: ShutdownSignals.handled)
        } catch {
            close(pipe.write)
            close(pipe.read)
            throw MachineError(error)
        }
        close(pipe.write)
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
