import Glibc

/// What a child process gets as one of its descriptors.
public enum ChildDescriptor: Sendable, Equatable {
    /// /dev/null, open for reading and writing.
    case null
    /// One of this process's descriptors, dup'ed onto the child's.
    case descriptor(Int32)
}

/// Starts a program with posix_spawn and returns its PID; the one way Skiff
/// starts host programs (mkfs and friends, the OCI runtime's monitor, the
/// bench's runtimes and QEMU).
///
/// - `arguments[0]` is looked up in PATH unless it holds a slash.
/// - `descriptors`: the child's descriptor → what it is. Any other
///   descriptor of this process reaches the child only if it lacks
///   close-on-exec (Skiff opens every descriptor with it, `makePipe`
///   included). A source may be any descriptor, a target among them too:
///   each source is first moved above the targets (close-on-exec), then
///   dup'ed onto its target, which clears the flag there.
/// - `environment`: "NAME=value" entries; nil for this process's.
/// - Every signal is unblocked in the child (Skiff blocks its shutdown
///   signals in every thread for the thread that waits for them), and those
///   in `defaultSignals` are at their default disposition.
public func spawnProcess(_ arguments: [String], descriptors: [(child: Int32, ChildDescriptor)] = [],
                         environment: [String]? = nil, defaultSignals: [Int32] = []) throws(SystemCallError) -> pid_t {
    guard let program = arguments.first else { throw SystemCallError("posix_spawn of nothing", EINVAL) }
    // Sources moved out of the way of every target, so that no dup2 lands
    // on a descriptor a later one still reads from.
    let lowest = (descriptors.map(\.child).max() ?? 2) + 1
    var moved: [Int32] = []
    defer { for fd in moved { close(fd) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (child, what) in descriptors {
        switch what {
        case .null:
            posix_spawn_file_actions_addopen(&actions, child, "/dev/null", O_RDWR, 0)
        case let .descriptor(source):
            let copy = fcntl(source, F_DUPFD_CLOEXEC, lowest)
            guard copy >= 0 else { throw SystemCallError("fcntl(F_DUPFD_CLOEXEC) of descriptor \(source)", errno) }
            moved.append(copy)
            posix_spawn_file_actions_adddup2(&actions, copy, child)
        }
    }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var unblocked = sigset_t()
    sigemptyset(&unblocked)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in defaultSignals { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigmask(&attributes, &unblocked)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid = pid_t()
    let result: Int32
    if let environment {
        let envp = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        result = posix_spawnp(&pid, program, &actions, &attributes, argv, envp)
    } else {
        result = posix_spawnp(&pid, program, &actions, &attributes, argv, environ)
    }
    guard result == 0 else { throw SystemCallError("cannot run \(program)", result) }
    return pid
}
