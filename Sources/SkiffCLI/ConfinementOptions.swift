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

    func validate() throws {
        guard SeccompMode(rawValue: seccomp) != nil else { throw ValidationError("--seccomp must be kill, log or off, not '\(seccomp)'") }
        if let seccompProbe, SeccompProbe(seccompProbe) == nil {
            throw ValidationError("--seccomp-probe must be THREAD:CALL (vcpu, devices, main, signals or coordinator; \(SeccompProbe.calls.joined(separator: ", ")))")
        }
    }

    func apply(to configuration: inout MachineConfiguration) {
        configuration.seccomp = SeccompMode(rawValue: seccomp) ?? .kill
        configuration.seccompProbe = seccompProbe.flatMap(SeccompProbe.init)
    }
}
