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
        /// The argument has any of these bits set (BPF_JSET).
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
/// then finds the call number by binary search (`program(_:)` says why);
/// jumps too long for classic BPF's 8-bit offsets go through JA, so the
/// list may grow as long as BPF_MAXINSNS allows.
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
        static let jumpAlways: UInt16 = UInt16(BPF_JMP | BPF_JA)
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
    ///
    /// After the architecture check, the call number is looked up in a
    /// binary search tree over the listed numbers (JGE at each node, at most
    /// four equality tests at a leaf), not tested against each in turn: a
    /// call runs about a dozen instructions instead of up to two per rule,
    /// and installing is cheaper too, because the kernel runs the program
    /// once for every system-call number when it attaches it (to cache the
    /// calls it always allows) with interrupts off: 105 µs for a list of 50
    /// as a tree against 190 µs as a list, on the host of docs/kvm-on-this-host.md,
    /// and every VMM thread installs one before the guest's first instruction.
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
        let entries = decisions().sorted { UInt32(bitPattern: $0.number) < UInt32(bitPattern: $1.number) }
        code += Self.search(entries[...], otherwise: otherwise)
        return code
    }

    /// What the program does once a listed number matched.
    enum Decision {
        case ret(UInt32)
        /// Allowed if any condition holds, else the default.
        case conditions([SeccompRule.Condition])
    }

    /// One decision per listed number. A failing call's errno comes first (it
    /// is never also allowed); rules for one call are merged: any
    /// unconditional rule allows it outright, else each condition is tried in
    /// turn and the call is refused after the last.
    func decisions() -> [(number: Int32, decision: Decision)] {
        var order: [Int32] = []
        var merged: [Int32: Decision] = [:]
        for (number, value) in failing where merged[number] == nil {
            order.append(number)
            merged[number] = .ret(Self.errno | UInt32(UInt16(truncatingIfNeeded: value)))
        }
        for rule in rules {
            switch (merged[rule.number], rule.condition) {
            case (nil, nil): order.append(rule.number); merged[rule.number] = .ret(Self.allow)
            case (nil, let condition?): order.append(rule.number); merged[rule.number] = .conditions([condition])
            case (.conditions?, nil): merged[rule.number] = .ret(Self.allow)
            case (.conditions(let tests)?, let condition?): merged[rule.number] = .conditions(tests + [condition])
            case (.ret?, _): break
            }
        }
        return order.map { ($0, merged[$0]!) }
    }

    /// A subtree over `entries` (sorted by number, the number in the
    /// accumulator); every path through it returns. A node whose left side
    /// is longer than a conditional jump can skip goes there through JA.
    static func search(_ entries: ArraySlice<(number: Int32, decision: Decision)>, otherwise: UInt32) -> [sock_filter] {
        guard entries.count > 4 else {
            var code: [sock_filter] = []
            for (number, decision) in entries {
                let block = action(decision, otherwise: otherwise)
                precondition(block.count < 256, "a seccomp rule's argument tests are too long for a BPF jump")
                code.append(jump(Code.jumpEqual, UInt32(bitPattern: number), ifTrue: 0, ifFalse: UInt8(block.count)))
                code += block
            }
            code.append(statement(Code.ret, otherwise))
            return code
        }
        let middle = entries.startIndex + entries.count / 2
        let pivot = UInt32(bitPattern: entries[middle].number)
        let below = search(entries[..<middle], otherwise: otherwise)
        let above = search(entries[middle...], otherwise: otherwise)
        if below.count <= Int(UInt8.max) {
            return [jump(Code.jumpAtLeast, pivot, ifTrue: UInt8(below.count), ifFalse: 0)] + below + above
        }
        return [jump(Code.jumpAtLeast, pivot, ifTrue: 0, ifFalse: 1), statement(Code.jumpAlways, UInt32(below.count))] + below + above
    }

    /// What follows a matched number: a return, or the argument tests (each
    /// loads its argument, so all of them end in a return too).
    static func action(_ decision: Decision, otherwise: UInt32) -> [sock_filter] {
        guard case let .conditions(tests) = decision else {
            guard case let .ret(value) = decision else { preconditionFailure() }
            return [statement(Code.ret, value)]
        }
        var block: [sock_filter] = []
        for condition in tests {
            switch condition {
            case let .oneOf(argument, values):
                block.append(statement(Code.loadWord, Field.argument(argument)))
                for value in values {
                    block += [jump(Code.jumpEqual, value, ifTrue: 0, ifFalse: 1), statement(Code.ret, allow)]
                }
            case let .hasBits(argument, bits):
                block += [statement(Code.loadWord, Field.argument(argument)),
                          jump(Code.jumpSet, bits, ifTrue: 0, ifFalse: 1), statement(Code.ret, allow)]
            }
        }
        block.append(statement(Code.ret, otherwise))
        return block
    }

    /// Installs the filter on the calling thread (and the threads it starts
    /// later). A no-op for `.off`.
    public func install(_ mode: SeccompMode) throws(SeccompError) {
        try compile(mode).install()
    }

    /// The program for `mode`, ready to install on whichever thread it is
    /// for: compiling is the part of an install that needs no kernel, so a
    /// thread with time to spare can do it for one that has none.
    public func compile(_ mode: SeccompMode) -> SeccompProgram {
        SeccompProgram(code: mode == .off ? [] : program(mode))
    }
}

/// A compiled filter (`SeccompFilter.compile`); empty for `.off`.
public struct SeccompProgram: Sendable {
    let code: [sock_filter]

    /// Installs it on the calling thread (and the threads it starts later).
    /// A no-op when empty (`.off`).
    public func install() throws(SeccompError) {
        guard !code.isEmpty else { return }
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
