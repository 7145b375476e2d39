import CSystem
import Glibc
import Seccomp
import TestSupport
import Testing

/// The BPF a filter compiles to, run by the kernel: each test forks a child
/// that installs a filter and makes calls (only system calls after the
/// fork, no allocation), and reads its exit status and stderr.
@Suite struct SeccompFilterTests {
    /// Runs `calls` (number, arg0, arg1, arg2) in a child under `filter`;
    /// exits 0 if every call returned, else whatever the filter did.
    /// With `compiled`, the child installs that through `SeccompProgram.install`.
    func runConfined(_ filter: SeccompFilter, _ mode: SeccompMode, _ calls: [(Int, Int, Int, Int)],
                     compiled: SeccompProgram? = nil) throws -> (status: Int32, stderr: String) {
        let program = filter.program(mode)
        // The child's loop below must not allocate once confined (malloc may
        // need mmap or brk, which the filters here refuse). In a debug build
        // its first run instantiates generic metadata on the heap: do that
        // here, in the parent, so the child inherits it ready.
        var checksum = 0
        for (number, a, b, c) in calls { checksum &+= number &+ a &+ b &+ c }
        _ = checksum
        return runInForkedChild {
            _ = csystem_seccomp_install_reporter()
            if let compiled {
                do { try compiled.install() } catch { return 100 }
            } else {
                let installed = program.withUnsafeBufferPointer { csystem_seccomp_install($0.baseAddress, UInt16($0.count)) }
                if installed != 0 { return 100 }
            }
            for (number, a, b, c) in calls { _ = csystem_syscall3(number, a, b, c) }
            return 0
        }
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

    /// A program compiled in one place confines the thread that installs it
    /// (the machine compiles the main thread's list on the signal thread);
    /// compiled for `.off`, it installs nothing.
    @Test func aProgramCompiledAheadConfinesWhoeverInstallsIt() throws {
        let filter = SeccompFilter(rules: base + [SeccompRule(Int(SYS_getppid), "test")])
        let compiled = filter.compile(.kill)
        #expect(try runConfined(filter, .kill, [(Int(SYS_getppid), 0, 0, 0)], compiled: compiled).status == 0)
        let forbidden = try runConfined(filter, .kill, [(Int(SYS_socket), 1, 1, 0)], compiled: compiled)
        #expect(forbidden.status == 159, "\(forbidden.stderr)")
        #expect(try runConfined(filter, .off, [(Int(SYS_socket), 1, 1, 0)], compiled: filter.compile(.off)).status == 0)
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

    @Test func aLongListWithArgumentTestsIsAcceptedByTheKernel() throws {
        // Long enough that the search tree's left halves outgrow an 8-bit jump (JA).
        let many = (400..<700).map { SeccompRule($0, "many", when: .oneOf(argument: 0, [1, 2, 3])) }
        let filter = SeccompFilter(rules: base + [SeccompRule(Int(SYS_getppid), "test")] + many)
        #expect(filter.program(.kill).contains { $0.code == UInt16(BPF_JMP | BPF_JA) })
        #expect(try runConfined(filter, .kill, [(Int(SYS_getppid), 0, 0, 0)]).status == 0)
        let refused = try runConfined(filter, .kill, [(Int(SYS_getuid), 0, 0, 0)])
        #expect(refused.status == 159, "\(refused.stderr)")
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

/// The program as data: a classic-BPF interpreter (the instructions the
/// compiler emits, anything else fails the test) runs it for every call
/// number and compares with what the rules say, without forking.
@Suite struct SeccompProgramTests {
    struct Call {
        var number: UInt32
        var architecture: UInt32 = 0xC000_003E
        var arguments: [UInt32] = [0, 0, 0, 0, 0, 0]
    }

    /// The filter's return value for `call`, and how many instructions ran.
    func run(_ program: [sock_filter], _ call: Call) -> (action: UInt32, steps: Int)? {
        var pc = 0, accumulator: UInt32 = 0, steps = 0
        while pc < program.count {
            let instruction = program[pc]
            steps += 1
            switch Int32(instruction.code) {
            case BPF_LD | BPF_W | BPF_ABS:
                switch instruction.k {
                case 0: accumulator = call.number
                case 4: accumulator = call.architecture
                case let offset where offset >= 16 && offset < 64 && offset % 8 == 0: accumulator = call.arguments[Int(offset - 16) / 8]
                default: return nil
                }
                pc += 1
            case BPF_JMP | BPF_JEQ | BPF_K: pc += 1 + Int(accumulator == instruction.k ? instruction.jt : instruction.jf)
            case BPF_JMP | BPF_JGE | BPF_K: pc += 1 + Int(accumulator >= instruction.k ? instruction.jt : instruction.jf)
            case BPF_JMP | BPF_JSET | BPF_K: pc += 1 + Int(accumulator & instruction.k != 0 ? instruction.jt : instruction.jf)
            case BPF_JMP | BPF_JA: pc += 1 + Int(instruction.k)
            case BPF_RET | BPF_K: return (instruction.k, steps)
            default: return nil
            }
        }
        return nil  // ran off the end: the kernel's checker would refuse it
    }

    /// What the rules mean, straight from their definition.
    func expected(_ filter: SeccompFilter, _ call: Call, otherwise: UInt32) -> UInt32 {
        guard call.architecture == 0xC000_003E, call.number < 0x4000_0000 else { return 0x8000_0000 }
        if let failing = filter.failing.first(where: { UInt32(bitPattern: $0.number) == call.number }) {
            return 0x0005_0000 | UInt32(failing.errno)
        }
        let rules = filter.rules.filter { UInt32(bitPattern: $0.number) == call.number }
        guard !rules.isEmpty else { return otherwise }
        for rule in rules {
            switch rule.condition {
            case nil: return 0x7FFF_0000
            case let .oneOf(argument, values)? where values.contains(call.arguments[argument]): return 0x7FFF_0000
            case let .hasBits(argument, bits)? where call.arguments[argument] & bits != 0: return 0x7FFF_0000
            default: continue
            }
        }
        return otherwise
    }

    @Test(arguments: [1, 2, 3, 4, 5, 9, 17, 60, 200])
    func everyNumberGetsWhatTheRulesSay(ruleCount: Int) {
        var random = SeededGenerator(seed: UInt64(ruleCount))
        var rules: [SeccompRule] = []
        for _ in 0..<ruleCount {
            let number = Int.random(in: 0..<460, using: &random)
            switch Int.random(in: 0..<4, using: &random) {
            case 0: rules.append(SeccompRule(number, "random", when: .oneOf(argument: Int.random(in: 0..<6, using: &random), [1, 5, 9])))
            case 1: rules.append(SeccompRule(number, "random", when: .hasBits(argument: 1, 0x4)))
            default: rules.append(SeccompRule(number, "random"))
            }
        }
        let failing = (0..<(ruleCount / 10)).map { _ in (number: Int32.random(in: 0..<460, using: &random), errno: ENOSYS) }
        let filter = SeccompFilter(rules: rules, failing: failing)
        for mode in [SeccompMode.kill, .log] {
            let program = filter.program(mode)
            let otherwise: UInt32 = mode == .log ? 0x7FFC_0000 : 0x0003_0000
            var calls = (0..<512).map { Call(number: UInt32($0)) }
            calls += [Call(number: 0x4000_0001), Call(number: UInt32.max), Call(number: 1, architecture: 0x4000_0003)]
            for number in Set(rules.map(\.number)) {
                for value: UInt32 in [0, 1, 4, 5, 6, 9] {
                    for argument in 0..<6 {
                        var call = Call(number: UInt32(number))
                        call.arguments[argument] = value
                        calls.append(call)
                    }
                }
            }
            for call in calls {
                let result = run(program, call)
                #expect(result?.action == expected(filter, call, otherwise: otherwise), "number \(call.number), arguments \(call.arguments)")
            }
        }
    }

    /// The point of the tree: a call's number is found in a few steps, not
    /// one test per listed call, however long the list.
    @Test func aNumberIsFoundInLogarithmicallyManySteps() {
        let rules = (0..<300).map { SeccompRule($0, "many") }
        let program = SeccompFilter(rules: rules).program(.kill)
        let steps = (0..<400).compactMap { run(program, Call(number: UInt32($0)))?.steps }
        #expect(steps.count == 400)
        // 6 for the architecture and x32 checks; 7 levels of JGE for 300
        // numbers in leaves of at most 4; 4 tests and the return at a leaf.
        #expect(steps.max()! <= 6 + 7 + 5, "\(steps.max()!) steps")
    }
}
