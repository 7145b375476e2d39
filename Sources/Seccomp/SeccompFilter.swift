import CSystem
import Glibc

/// What a seccomp filter does with a system call its rules do not allow.
public enum SeccompMode: String, Sendable, CaseIterable {
    /// SIGSYS to the calling thread; the reporter (`Seccomp.installReporter`)
    /// names the call and ends the whole process with status 159.
    case kill
    /// Allowed, and logged by the kernel (the audit log / dmesg): for finding
    /// what a new code path needs without stopping anyone.
    case log
    /// No filter at all.
    case off
}

/// One allowed system call, with the reason it is needed (the lists are
/// meant to be read: every entry says why it is there).
public struct SeccompRule: Sendable {
    /// A condition on one argument's low 32 bits (ioctl request numbers,
    /// clone flags, fcntl commands, ...).
    public enum Condition: Sendable {
        /// The argument equals one of these values.
        case oneOf(argument: Int, [UInt32])
        /// The argument has all of these bits set.
        case hasBits(argument: Int, UInt32)
    }

    public let number: Int32
    public let condition: Condition?
    public let why: String

    public init(_ number: Int, _ why: String, when condition: Condition? = nil) {
        self.number = Int32(number)
        self.condition = condition
        self.why = why
    }
}

/// An allow list compiled to classic BPF for SECCOMP_SET_MODE_FILTER.
///
/// The program checks the architecture (anything but the one Skiff was
/// built for is refused: no 32-bit or x32 entry points around the list),
/// then tests the call number against each rule in turn; every test is two
/// instructions (compare, return), so no jump ever needs more than the
/// 8-bit offsets classic BPF has, however long the list grows.
public struct SeccompFilter: Sendable {
    public let rules: [SeccompRule]
    /// Calls answered with an error instead of the default action: glibc
    /// tries clone3 first and falls back to clone, whose flags a filter can
    /// read (clone3 passes them in memory, which seccomp cannot see).
    public let failing: [(number: Int32, errno: Int32)]

    public init(rules: [SeccompRule], failing: [(number: Int32, errno: Int32)] = []) {
        self.rules = rules
        self.failing = failing
    }

    enum Code {
        static let loadWord: UInt16 = UInt16(BPF_LD | BPF_W | BPF_ABS)
        static let jumpEqual: UInt16 = UInt16(BPF_JMP | BPF_JEQ | BPF_K)
        static let jumpSet: UInt16 = UInt16(BPF_JMP | BPF_JSET | BPF_K)
        static let jumpAtLeast: UInt16 = UInt16(BPF_JMP | BPF_JGE | BPF_K)
        static let ret: UInt16 = UInt16(BPF_RET | BPF_K)
    }

    /// Offsets into struct seccomp_data.
    enum Field {
        static let number: UInt32 = 0
        static let architecture: UInt32 = 4
        /// Low 32 bits of argument `index` (little-endian).
        static func argument(_ index: Int) -> UInt32 { 16 + 8 * UInt32(index) }
    }

    #if arch(x86_64)
    /// AUDIT_ARCH_X86_64: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    static let architecture: UInt32 = 0xC000_003E
    /// x32 calls have this bit set in the number; they are another ABI.
    static let x32Bit: UInt32 = 0x4000_0000
    #elseif arch(arm64)
    static let architecture: UInt32 = 0xC000_00B7
    static let x32Bit: UInt32 = 0
    #endif

    static let allow: UInt32 = 0x7FFF_0000      // SECCOMP_RET_ALLOW
    static let trap: UInt32 = 0x0003_0000       // SECCOMP_RET_TRAP
    static let log: UInt32 = 0x7FFC_0000        // SECCOMP_RET_LOG
    static let killProcess: UInt32 = 0x8000_0000 // SECCOMP_RET_KILL_PROCESS
    static let errno: UInt32 = 0x0005_0000      // SECCOMP_RET_ERRNO | value

    static func statement(_ code: UInt16, _ k: UInt32) -> sock_filter {
        sock_filter(code: code, jt: 0, jf: 0, k: k)
    }

    static func jump(_ code: UInt16, _ k: UInt32, ifTrue: UInt8, ifFalse: UInt8) -> sock_filter {
        sock_filter(code: code, jt: ifTrue, jf: ifFalse, k: k)
    }

    /// The BPF program; `mode` decides what happens to everything else.
    public func program(_ mode: SeccompMode) -> [sock_filter] {
        let otherwise = mode == .log ? Self.log : Self.trap
        var code: [sock_filter] = [
            Self.statement(Code.loadWord, Field.architecture),
            Self.jump(Code.jumpEqual, Self.architecture, ifTrue: 1, ifFalse: 0),
            Self.statement(Code.ret, Self.killProcess),
            Self.statement(Code.loadWord, Field.number),
        ]
        if Self.x32Bit != 0 {
            code += [Self.jump(Code.jumpAtLeast, Self.x32Bit, ifTrue: 0, ifFalse: 1), Self.statement(Code.ret, Self.killProcess)]
        }
        for (number, value) in failing {
            code += [Self.jump(Code.jumpEqual, UInt32(bitPattern: number), ifTrue: 0, ifFalse: 1),
                     Self.statement(Code.ret, Self.errno | UInt32(value))]
        }
        // Rules for one call are merged (the first test of a number decides
        // it): any unconditional rule allows it outright, else each
        // condition is tried in turn and the call is refused after the last.
        var order: [Int32] = []
        var conditions: [Int32: [SeccompRule.Condition]?] = [:]
        for rule in rules {
            if conditions[rule.number] == nil { order.append(rule.number); conditions[rule.number] = .some([]) }
            if let condition = rule.condition, case .some(.some(let existing)) = conditions[rule.number] {
                conditions[rule.number] = .some(existing + [condition])
            } else if rule.condition == nil {
                conditions[rule.number] = .some(nil)
            }
        }
        for number in order {
            guard case .some(.some(let tests)) = conditions[number] else {
                code += [Self.jump(Code.jumpEqual, UInt32(bitPattern: number), ifTrue: 0, ifFalse: 1),
                         Self.statement(Code.ret, Self.allow)]
                continue
            }
            // Number matches: load each argument, test it, allow on a match;
            // after the last test, the default. Other rules reload the number.
            var block: [sock_filter] = []
            for condition in tests {
                switch condition {
                case let .oneOf(argument, values):
                    block.append(Self.statement(Code.loadWord, Field.argument(argument)))
                    for value in values {
                        block += [Self.jump(Code.jumpEqual, value, ifTrue: 0, ifFalse: 1), Self.statement(Code.ret, Self.allow)]
                    }
                case let .hasBits(argument, bits):
                    block += [Self.statement(Code.loadWord, Field.argument(argument)),
                              Self.jump(Code.jumpSet, bits, ifTrue: 0, ifFalse: 1), Self.statement(Code.ret, Self.allow)]
                }
            }
            block.append(Self.statement(Code.ret, otherwise))
            precondition(block.count < 256, "a seccomp rule's argument tests are too long for a BPF jump")
            code.append(Self.jump(Code.jumpEqual, UInt32(bitPattern: number), ifTrue: 0, ifFalse: UInt8(block.count)))
            code += block
        }
        code.append(Self.statement(Code.ret, otherwise))
        return code
    }

    /// Installs the filter on the calling thread (and the threads it starts
    /// later). A no-op for `.off`.
    public func install(_ mode: SeccompMode) throws(SeccompError) {
        guard mode != .off else { return }
        let code = program(mode)
        guard code.count <= Int(BPF_MAXINSNS) else { throw .tooLong(code.count) }
        let result = code.withUnsafeBufferPointer { csystem_seccomp_install($0.baseAddress, UInt16($0.count)) }
        if result != 0 { throw .install(errno: -result) }
    }
}

public enum SeccompError: Error, CustomStringConvertible, Equatable {
    case install(errno: Int32)
    case reporter(errno: Int32)
    case tooLong(Int)

    public var description: String {
        switch self {
        case let .install(errno): return "seccomp: cannot install the filter: \(String(cString: strerror(errno)))"
        case let .reporter(errno): return "seccomp: cannot install the SIGSYS reporter: \(String(cString: strerror(errno)))"
        case let .tooLong(count): return "seccomp: the filter has \(count) instructions, more than BPF allows"
        }
    }
}

/// Process-wide pieces: the SIGSYS reporter and the thread labels it names.
public enum Seccomp {
    /// Installs the SIGSYS handler that turns a trapped call into one line
    /// and the end of the process. Call before the first filter.
    public static func installReporter() throws(SeccompError) {
        let result = csystem_seccomp_install_reporter()
        if result != 0 { throw .reporter(errno: -result) }
    }

    /// Names the calling thread for the reporter (`label` is kept for ever)
    /// and, with `rename`, for /proc (the first 15 bytes, as `comm`; not for
    /// the main thread, whose name is the process's in ps and pkill).
    public static func label(_ label: StaticString, rename: Bool = true) {
        csystem_seccomp_label_thread(UnsafeRawPointer(label.utf8Start).assumingMemoryBound(to: CChar.self), rename)
    }

    /// The calling thread's seccomp mode as the kernel reports it (2: filtered).
    public static var currentMode: Int32 { csystem_seccomp_mode() }

    /// The terminal settings the reporter puts back (nil: none).
    public static func rememberTerminal(_ original: termios?) {
        if var original { csystem_seccomp_remember_terminal(&original) } else { csystem_seccomp_remember_terminal(nil) }
    }

    /// Makes the forbidden call `call` from this thread (tests of the filters).
    public static func probe(_ call: String) -> Int32 { csystem_seccomp_probe(call) }

    /// The x86_64 name of a system-call number, if known.
    public static func name(of number: Int) -> String? { csystem_syscall_name(number).map { String(cString: $0) } }
}
