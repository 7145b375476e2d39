import SkiffKit
import Seccomp

/// How the VMM process confines itself: `skiff boot`, `run` and `restore`.
struct ConfinementOptions {
    static let options: [OptionSpec] = [
        .value("seccomp", valueName: "kill|log|off", default: "kill", help: """
            seccomp allow lists on every VMM thread: kill ends the VMM on a call outside them \
            (naming it), log lets it through and logs it in the kernel's audit log, off installs none.
            """),
        .value("seccomp-probe", help: "", hidden: true),
        .flag("jail", help: """
            Run the VMM jailed (as root): new PID, mount, IPC and network namespaces, a root holding only \
            its disks, a cgroup limiting memory and CPU, every capability dropped, then the jail user.
            """),
        .value("jail-user", valueName: "UID:GID", default: "65534:65534", help: "The jail's user and group (not root)."),
    ]

    var seccomp = "kill"
    var seccompProbe: String?
    var jail = false
    var jailUser = "65534:65534"

    init(_ arguments: ParsedArguments) throws(UsageError) {
        seccomp = arguments.string("seccomp") ?? seccomp
        seccompProbe = arguments.string("seccomp-probe")
        jail = arguments.flag("jail")
        guard SeccompMode(rawValue: seccomp) != nil else { throw UsageError("--seccomp must be kill, log or off, not '\(seccomp)'") }
        // Parsed only when given (the default is good: ArgumentTests), as
        // splitting it cost 20 µs of every start.
        if let given = arguments.string("jail-user") {
            guard JailOptions(user: given) != nil else { throw UsageError("--jail-user must be UID:GID, numbers, not root, not '\(given)'") }
            jailUser = given
        }
        if let seccompProbe, SeccompProbe(seccompProbe) == nil {
            throw UsageError("--seccomp-probe must be THREAD:CALL (vcpu, devices, main, signals or coordinator; \(SeccompProbe.calls.joined(separator: ", ")))")
        }
    }

    func apply(to configuration: inout MachineConfiguration) {
        configuration.seccomp = SeccompMode(rawValue: seccomp) ?? .kill
        configuration.seccompProbe = seccompProbe.flatMap(SeccompProbe.init)
        if jail { configuration.jail = JailOptions(user: jailUser) }
    }
}
