import CSystem
import Glibc
import Seccomp
import Testing

/// The BPF a filter compiles to, run by the kernel: each test forks a child
/// that installs a filter and makes calls (only system calls after the
/// fork, no allocation), and reads its exit status and stderr.
@Suite struct SeccompFilterTests {
    /// Runs `calls` (number, arg0, arg1, arg2) in a child under `filter`;
    /// exits 0 if every call returned, else whatever the filter did.
    func runConfined(_ filter: SeccompFilter, _ mode: SeccompMode, _ calls: [(Int, Int, Int, Int)]) throws -> (status: Int32, stderr: String) {
        let program = filter.program(mode)
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        // The child's loop below must not allocate once confined (malloc may
        // need mmap or brk, which the filters here refuse). In a debug build
        // its first run instantiates generic metadata on the heap: do that
        // here, in the parent, so the child inherits it ready.
        var checksum = 0
        for (number, a, b, c) in calls { checksum &+= number &+ a &+ b &+ c }
        _ = checksum
        let child = fork()
        if child == 0 {
            dup2(fds[1], 2)
            _ = csystem_seccomp_install_reporter()
            let installed = program.withUnsafeBufferPointer { csystem_seccomp_install($0.baseAddress, UInt16($0.count)) }
            if installed != 0 { _exit(100) }
            for (number, a, b, c) in calls { _ = csystem_syscall3(number, a, b, c) }
            _exit(0)
        }
        close(fds[1])
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if count <= 0 { break }
            output += buffer[0..<count]
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(child, &status, 0)
        let exited = status & 0x7F == 0
        return (exited ? (status >> 8) & 0xFF : -(status & 0x7F), String(decoding: output, as: UTF8.self))
    }

    /// What every test child needs: exit_group to end, write for the reporter.
    let base = [SeccompRule(Int(SYS_exit_group), "end"), SeccompRule(Int(SYS_write), "report")]

    @Test func allowedCallsPassAndAForbiddenOneEndsTheProcessWithItsName() throws {
        let filter = SeccompFilter(rules: base + [SeccompRule(Int(SYS_getppid), "test")])
        let allowed = try runConfined(filter, .kill, [(Int(SYS_getppid), 0, 0, 0)])
        #expect(allowed.status == 0)
        let forbidden = try runConfined(filter, .kill, [(Int(SYS_getppid), 0, 0, 0), (Int(SYS_socket), 1, 1, 0), (Int(SYS_getppid), 0, 0, 0)])
        #expect(forbidden.status == 159)
        #expect(forbidden.stderr.contains("forbidden system call, socket (41)"), "\(forbidden.stderr)")
    }

    @Test func logModeLetsEverythingThrough() throws {
        let filter = SeccompFilter(rules: base)
        let result = try runConfined(filter, .log, [(Int(SYS_getppid), 0, 0, 0), (Int(SYS_getuid), 0, 0, 0)])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
    }

    @Test func argumentConditionsAreChecked() throws {
        // fcntl(0, F_GETFD) allowed, fcntl(0, F_GETFL) not.
        let filter = SeccompFilter(rules: base + [
            SeccompRule(Int(SYS_fcntl), "test", when: .oneOf(argument: 1, [UInt32(F_GETFD), 99])),
            SeccompRule(Int(SYS_getppid), "test"),
        ])
        #expect(try runConfined(filter, .kill, [(Int(SYS_fcntl), 0, Int(F_GETFD), 0), (Int(SYS_getppid), 0, 0, 0)]).status == 0)
        let refused = try runConfined(filter, .kill, [(Int(SYS_fcntl), 0, Int(F_GETFL), 0)])
        #expect(refused.status == 159)
        #expect(refused.stderr.contains("fcntl"), "\(refused.stderr)")
        // A bit test: kill(0, sig) only with bit 0x4 in the signal number (0 and 1 refused).
        let bits = SeccompFilter(rules: base + [SeccompRule(Int(SYS_kill), "test", when: .hasBits(argument: 1, 0x4))])
        #expect(try runConfined(bits, .kill, [(Int(SYS_kill), Int(getpid()), 0, 0)]).status == 159)
    }

    @Test func failingCallsGetTheirErrnoNotTheTrap() throws {
        let filter = SeccompFilter(rules: base, failing: [(Int32(SYS_getppid), ENOSYS)])
        let result = try runConfined(filter, .kill, [(Int(SYS_getppid), 0, 0, 0)])
        #expect(result.status == 0, "status \(result.status): \(result.stderr)")
    }

    @Test func aLongListStillCompilesToShortJumps() {
        let rules = (0..<300).map { SeccompRule($0, "many") }
        let program = SeccompFilter(rules: rules).program(.kill)
        #expect(program.count == 4 + 2 + 2 * 300 + 1)
        #expect(program.allSatisfy { $0.jt <= 1 && $0.jf <= 1 })
    }

    @Test func namesComeFromTheKernelHeader() {
        #expect(Seccomp.name(of: Int(SYS_execve)) == "execve")
        #expect(Seccomp.name(of: Int(SYS_openat)) == "openat")
        #expect(Seccomp.name(of: 100_000) == nil)
    }
}

extension SeccompFilterTests {
    /// Two lists naming one call (the runtime's ioctl for the terminal and a
    /// thread's for KVM) allow the union, not only the first.
    @Test func rulesForOneCallAreMerged() throws {
        let filter = SeccompFilter(rules: base + [
            SeccompRule(Int(SYS_fcntl), "first", when: .oneOf(argument: 1, [UInt32(F_GETFD)])),
            SeccompRule(Int(SYS_fcntl), "second", when: .oneOf(argument: 1, [UInt32(F_GETFL)])),
            SeccompRule(Int(SYS_getppid), "conditioned", when: .oneOf(argument: 0, [7])),
            SeccompRule(Int(SYS_getppid), "then unconditional"),
        ])
        #expect(try runConfined(filter, .kill, [(Int(SYS_fcntl), 0, Int(F_GETFD), 0), (Int(SYS_fcntl), 0, Int(F_GETFL), 0),
                                                (Int(SYS_getppid), 0, 0, 0)]).status == 0)
        #expect(try runConfined(filter, .kill, [(Int(SYS_fcntl), 0, Int(F_SETFD), 0)]).status == 159)
    }
}
