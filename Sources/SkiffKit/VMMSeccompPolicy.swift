import CSystem
import Glibc
import Hypervisor
import Seccomp

/// The VMM's seccomp allow lists, one per thread kind, in one place.
///
/// Each thread installs its own list before it does anything the guest can
/// influence: vCPU threads before their first KVM_RUN, the device loop
/// before its first epoll_wait, the main thread and the signal thread once
/// the machine is built and before any vCPU is released. Every entry says
/// why it is there; a call not listed ends the whole process (`--seccomp
/// kill`, the CLI's default) with a line naming it. The lists were taken from
/// strace of `skiff boot`, `skiff run` (cold, snapshotting, restored, with
/// -i and -t) and `skiff restore`, then cut to what the code paths need. The
/// hypervisor's own requests (KVM's ioctls) are its `HypervisorSystemCalls`,
/// admitted on the threads that do that work.
public enum VMMSeccompPolicy {
    /// The threads of a running VMM.
    public enum Thread: String, Sendable, CaseIterable {
        case vcpu
        case deviceLoop = "devices"
        case main
        case signals
        /// Pauses the guest at a boot marker, writes a snapshot, hands over.
        case coordinator
        /// The OCI monitor's control socket: start, signals, state updates.
        case control

        /// The thread's name in /proc and in the reporter's line.
        public var label: StaticString {
            switch self {
            case .vcpu: return "skiff-vcpu"
            case .deviceLoop: return "skiff-devices"
            case .main: return "skiff-main"
            case .signals: return "skiff-signals"
            case .coordinator: return "skiff-snapshot"
            case .control: return "skiff-control"
            }
        }
    }

    /// `hypervisor`: the requests of the machine's hypervisor (`Machine.hypervisorCalls`).
    /// `stateFiles`: the OCI monitor, whose main thread rewrites the
    /// container's state.json and removes its socket once the guest stopped.
    /// `vsock`: the machine has a vsock device, whose host sockets the device loop accepts, connects and closes.
    public static func filter(for thread: Thread, hypervisor: HypervisorSystemCalls, stateFiles: Bool = false,
                              vsock: Bool = false) -> SeccompFilter {
        let rules: [SeccompRule]
        switch thread {
        case .vcpu: rules = runtime(hypervisor) + vcpu(hypervisor)
        case .deviceLoop: rules = runtime(hypervisor) + deviceLoop(hypervisor) + (vsock ? vsockSockets : [])
        case .main: rules = runtime(hypervisor) + main(hypervisor) + (stateFiles ? monitorFiles : [])
        case .signals: rules = runtime(hypervisor) + signals(hypervisor)
        case .coordinator: rules = runtime(hypervisor) + coordinator(hypervisor)
        case .control: rules = runtime(hypervisor) + control(hypervisor) + monitorFiles
        }
        // glibc's pthread_create and posix_spawn try clone3 first; its flags
        // sit in memory a filter cannot read. ENOSYS makes glibc use clone,
        // whose flags `runtime` checks.
        return SeccompFilter(rules: rules, failing: [(Int32(SYS_clone3), ENOSYS)])
    }

    // MARK: - What every thread needs

    /// PROT_NONE, PROT_READ, PROT_READ|PROT_WRITE: never new executable memory.
    static let dataProtections: [UInt32] = [UInt32(PROT_NONE), UInt32(PROT_READ), UInt32(PROT_READ | PROT_WRITE)]

    static let terminalRequests: [UInt32] = [UInt32(TCGETS), UInt32(TCSETS), UInt32(TCSETSW), UInt32(TCSETSF)]

    /// The Swift runtime, glibc's allocator and threads, and the way out.
    static func runtime(_ hypervisor: HypervisorSystemCalls) -> [SeccompRule] { [
        SeccompRule(Int(SYS_mmap), "the allocator's arenas and large blocks (data only)", when: .oneOf(argument: 2, dataProtections)),
        SeccompRule(Int(SYS_mprotect), "the allocator commits arena pages (data only)", when: .oneOf(argument: 2, dataProtections)),
        SeccompRule(Int(SYS_munmap), "the allocator returns memory"),
        SeccompRule(Int(SYS_madvise), "the allocator and thread exit release pages (MADV_DONTNEED)"),
        SeccompRule(Int(SYS_brk), "the allocator's main arena"),
        SeccompRule(Int(SYS_mremap), "realloc of large blocks"),
        SeccompRule(Int(SYS_futex), "mutexes, condition variables, thread joins"),
        SeccompRule(Int(SYS_sched_yield), "spin-then-wait locks"),
        SeccompRule(Int(SYS_gettid), "Swift's Mutex owner and glibc's thread id"),
        SeccompRule(Int(SYS_getpid), "tgkill's first argument"),
        SeccompRule(Int(SYS_tgkill), "kicking a vCPU out of KVM_RUN; abort() on a Swift runtime error",
                    when: .oneOf(argument: 2, [UInt32(hypervisor.kickSignal), UInt32(SIGABRT)])),
        SeccompRule(Int(SYS_rt_sigprocmask), "thread start and exit; abort()"),
        SeccompRule(Int(SYS_rt_sigreturn), "return from the vCPU kick's empty handler"),
        SeccompRule(Int(SYS_clock_gettime), "timelines and CPU time (the vDSO covers most)"),
        SeccompRule(Int(SYS_clock_nanosleep), "the short waits of a vCPU pause"),
        SeccompRule(Int(SYS_nanosleep), "usleep"),
        SeccompRule(Int(SYS_write), "eventfd signals, the console and log lines, the seccomp reporter"),
        SeccompRule(Int(SYS_newfstatat), "glibc's strftime checks /etc/localtime for a log line's time (stat only, no open)"),
        SeccompRule(Int(SYS_ioctl), "terminal mode (raw and restored; the reporter restores it too)",
                    when: .oneOf(argument: 1, terminalRequests)),
        SeccompRule(Int(SYS_exit), "a thread ends"),
        SeccompRule(Int(SYS_exit_group), "the process ends"),
    ] }

    // MARK: - Per thread

    /// KVM_RUN and what the exit handlers reach: device registers (memory and
    /// locks only), interrupt lines, the pause's state capture, the boot
    /// markers' hand-over, stdin's start.
    static func vcpu(_ hypervisor: HypervisorSystemCalls) -> [SeccompRule] { [
        SeccompRule(Int(SYS_ioctl), "running the vCPU; registers for the platform's fix-ups and the pause's capture; interrupt lines (a UART's); terminal mode",
                    when: .oneOf(argument: 1, hypervisor.vcpuRequests + hypervisor.interruptRequests + terminalRequests)),
        SeccompRule(Int(SYS_read), "the start gate (an eventfd) and the pause gate"),
        SeccompRule(Int(SYS_getrandom), "the hand-over's seed, written when init says ready"),
        SeccompRule(Int(SYS_epoll_ctl), "the container's stdin relay starts when init says the container is ready"),
    ] }

    /// Queue notifications, disk and network I/O, entropy, timers, interrupts.
    static func deviceLoop(_ hypervisor: HypervisorSystemCalls) -> [SeccompRule] { [
        SeccompRule(Int(SYS_epoll_wait), "the loop itself"),
        SeccompRule(Int(SYS_epoll_pwait), "the loop itself (glibc may use it for epoll_wait)"),
        SeccompRule(Int(SYS_epoll_ctl), "stdin watched or not as the guest takes it"),
        SeccompRule(Int(SYS_read), "eventfds, timerfds, TAP frames, stdin"),
        SeccompRule(Int(SYS_readv), "TAP frames"),
        SeccompRule(Int(SYS_writev), "TAP frames"),
        SeccompRule(Int(SYS_preadv), "virtio-blk reads, whole chains at once"),
        SeccompRule(Int(SYS_pwritev), "virtio-blk writes, whole chains at once"),
        SeccompRule(Int(SYS_pread64), "virtio-blk reads"),
        SeccompRule(Int(SYS_pwrite64), "virtio-blk writes"),
        SeccompRule(Int(SYS_fdatasync), "virtio-blk flush"),
        SeccompRule(Int(SYS_getrandom), "virtio-rng"),
        SeccompRule(Int(SYS_ioctl), "interrupt lines; terminal mode",
                    when: .oneOf(argument: 1, hypervisor.interruptRequests + terminalRequests)),
    ] }

    /// The vsock device's Unix sockets (`VsockUnixBackend`), on the device loop:
    /// host clients accepted, guest connections made to `<uds>_<port>`.
    /// Unix sockets only: no other address family can be opened.
    static let vsockSockets: [SeccompRule] = [
        SeccompRule(Int(SYS_accept4), "a host client of the vsock socket"),
        SeccompRule(Int(SYS_recvfrom), "peeking at a client's CONNECT line"),
        SeccompRule(Int(SYS_sendto), "the guest's bytes to a host socket (send with MSG_NOSIGNAL)"),
        SeccompRule(Int(SYS_socket), "a guest's connection to the host (<uds>_<port>), Unix sockets only",
                    when: .oneOf(argument: 0, [UInt32(AF_UNIX)])),
        SeccompRule(Int(SYS_connect), "a guest's connection to the host (<uds>_<port>)"),
        SeccompRule(Int(SYS_shutdown), "the guest will send no more"),
        SeccompRule(Int(SYS_close), "a connection ends"),
        SeccompRule(Int(SYS_epoll_ctl), "a connection's socket watched"),
    ]

    /// After the machine is built: wait for the vCPUs, tear down, report.
    static func main(_ hypervisor: HypervisorSystemCalls) -> [SeccompRule] { [
        SeccompRule(Int(SYS_read), "eventfds"),
        SeccompRule(Int(SYS_poll), "waiting, a second at most, for the signal thread to install its list (ShutdownSignals.startConfining)"),
        SeccompRule(Int(SYS_close), "teardown"),
        SeccompRule(Int(SYS_getrusage), "the report's CPU time"),
        SeccompRule(Int(SYS_ioctl), "the platform's work before the VM is destroyed (x86: the PIT's tick reinjection off)",
                    when: .oneOf(argument: 1, hypervisor.teardownRequests)),
        SeccompRule(Int(SYS_epoll_ctl), "stopping the stdin relay"),
        SeccompRule(Int(SYS_fsync), "the --console file on the way out"),
        SeccompRule(Int(SYS_rt_sigaction), "dying by a container's signal (the OCI monitor)"),
        SeccompRule(Int(SYS_kill), "dying by a container's signal (the OCI monitor), to this process only",
                    when: .oneOf(argument: 0, [ownProcess])),
        SeccompRule(Int(SYS_tgkill), "raise(): dying by a container's signal, any signal, to this process only",
                    when: .oneOf(argument: 0, [ownProcess])),
    ] }

    /// This process's ID as its own PID namespace sees it (the filter is
    /// built in the process it confines, after the jail if there is one).
    static var ownProcess: UInt32 { UInt32(bitPattern: getpid()) }

    /// sigwait for SIGINT/SIGTERM/SIGHUP/SIGQUIT, then stop the machine.
    static func signals(_ hypervisor: HypervisorSystemCalls) -> [SeccompRule] { [
        SeccompRule(Int(SYS_rt_sigtimedwait), "sigwait"),
        SeccompRule(Int(SYS_read), "eventfds"),
        SeccompRule(Int(SYS_rt_sigaction), "a second signal: die by it at once"),
        SeccompRule(Int(SYS_kill), "a second signal: die by it at once, this process only", when: .oneOf(argument: 0, [ownProcess])),
        SeccompRule(Int(SYS_tgkill), "raise(): a second signal ends this process by it", when: .oneOf(argument: 0, [ownProcess])),
        SeccompRule(Int(SYS_ioctl), "SIGWINCH: the terminal's size (TIOCGWINSZ) sent to the guest's line (an interrupt)",
                    when: .oneOf(argument: 1, [UInt32(TIOCGWINSZ)] + hypervisor.interruptRequests)),
    ] }

    /// The OCI monitor (`skiff-oci`): state.json replaced atomically, the
    /// --log file appended to, the control socket removed. Files only in the
    /// container's own directory, by the code's choice; seccomp cannot see paths.
    static let monitorFiles: [SeccompRule] = [
        SeccompRule(Int(SYS_openat), "state.json (read, and its replacement written beside it); the --log file"),
        SeccompRule(Int(SYS_read), "state.json"),
        SeccompRule(Int(SYS_fstat), "state.json"),
        SeccompRule(Int(SYS_lseek), "state.json"),
        SeccompRule(Int(SYS_fsync), "state.json's replacement is durable before the rename"),
        SeccompRule(Int(SYS_rename), "state.json replaced atomically"),
        SeccompRule(Int(SYS_unlink), "a failed replacement; the control socket at the end"),
        SeccompRule(Int(SYS_close), "those files"),
    ]

    /// The OCI monitor's control socket thread: one request per connection.
    static func control(_ hypervisor: HypervisorSystemCalls) -> [SeccompRule] { [
        SeccompRule(Int(SYS_accept), "the next request on the control socket (already listening)"),
        SeccompRule(Int(SYS_accept4), "the next request on the control socket (glibc's accept)"),
        SeccompRule(Int(SYS_fcntl), "close-on-exec for the connection", when: .oneOf(argument: 1, [UInt32(F_SETFD), UInt32(F_GETFD)])),
        SeccompRule(Int(SYS_ioctl), "the terminal's size at start (TIOCGWINSZ); kill's control message raises the guest's line (an interrupt)",
                    when: .oneOf(argument: 1, [UInt32(TIOCGWINSZ)] + hypervisor.interruptRequests)),
    ] }

    /// Pause, snapshot (a new directory of files), hold, hand-over.
    static func coordinator(_ hypervisor: HypervisorSystemCalls) -> [SeccompRule] { [
        SeccompRule(Int(SYS_read), "eventfds; the pause gate"),
        SeccompRule(Int(SYS_ioctl), "the machine-wide state of a snapshot; terminal mode",
                    when: .oneOf(argument: 1, hypervisor.machineStateRequests + terminalRequests)),
        SeccompRule(Int(SYS_openat), "the snapshot's files (a new temporary directory, then renamed)"),
        SeccompRule(Int(SYS_mkdir), "the snapshot's temporary directory"),
        SeccompRule(Int(SYS_mkdirat), "the snapshot's temporary directory"),
        SeccompRule(Int(SYS_rename), "the snapshot's directory put in place"),
        SeccompRule(Int(SYS_renameat), "the snapshot's directory put in place"),
        SeccompRule(Int(SYS_renameat2), "the snapshot's directory put in place"),
        SeccompRule(Int(SYS_unlink), "a failed snapshot's files removed"),
        SeccompRule(Int(SYS_unlinkat), "a failed snapshot's files removed"),
        SeccompRule(Int(SYS_rmdir), "a failed snapshot's directory removed"),
        SeccompRule(Int(SYS_fstat), "sizes of what is written"),
        SeccompRule(Int(SYS_lseek), "sparse memory files"),
        SeccompRule(Int(SYS_pwrite64), "the memory file"),
        SeccompRule(Int(SYS_pwritev), "the memory file"),
        SeccompRule(Int(SYS_ftruncate), "the memory file's size"),
        SeccompRule(Int(SYS_fsync), "the snapshot is durable before it is renamed into place"),
        SeccompRule(Int(SYS_close), "the snapshot's files"),
        SeccompRule(Int(SYS_getrandom), "the hand-over's seed"),
    ] }
}
