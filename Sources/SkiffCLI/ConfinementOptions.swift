import ArgumentParser
import SkiffKit
import Seccomp

/// How the VMM process confines itself: `skiff boot`, `run` and `restore`.
struct ConfinementOptions: ParsableArguments {
    @Option(help: ArgumentHelp("""
        seccomp allow lists on every VMM thread: kill ends the VMM on a call outside them \
        (naming it), log lets it through and logs it in the kernel's audit log, off installs none.
        """, valueName: "kill|log|off"))
    var seccomp: String = "kill"

    @Option(name: .customLong("seccomp-probe"), help: .hidden)
    var seccompProbe: String?

    @Flag(help: ArgumentHelp("""
        Run the VMM jailed (as root): new PID, mount, IPC and network namespaces, a root holding only \
        its disks, a cgroup limiting memory and CPU, every capability dropped, then the jail user.
        """))
    var jail = false

    @Option(name: .customLong("jail-user"), help: ArgumentHelp("The jail's user and group (not root).", valueName: "UID:GID"))
    var jailUser: String = "65534:65534"

    func validate() throws {
        guard SeccompMode(rawValue: seccomp) != nil else { throw ValidationError("--seccomp must be kill, log or off, not '\(seccomp)'") }
        guard JailOptions(user: jailUser) != nil else { throw ValidationError("--jail-user must be UID:GID, numbers, not root, not '\(jailUser)'") }
        if let seccompProbe, SeccompProbe(seccompProbe) == nil {
            throw ValidationError("--seccomp-probe must be THREAD:CALL (vcpu, devices, main, signals or coordinator; \(SeccompProbe.calls.joined(separator: ", ")))")
        }
    }

    func apply(to configuration: inout MachineConfiguration) {
        configuration.seccomp = SeccompMode(rawValue: seccomp) ?? .kill
        configuration.seccompProbe = seccompProbe.flatMap(SeccompProbe.init)
        if jail { configuration.jail = JailOptions(user: jailUser) }
    }
}
