import ArgumentParser
import Testing
@testable import SkiffCLI
@testable import SkiffKit

@Suite struct BootArgumentTests {
    @Test func parsesEveryBootOption() throws {
        let command = try Skiff.parseAsRoot([
            "boot", "--kernel", "/k", "--initrd", "/i", "--append", "quiet", "--memory", "256", "--cpus", "2",
            "--console", "file:/tmp/c", "--compat", "none", "--timings", "--timeout", "30", "-vv",
        ])
        let boot = try #require(command as? Skiff.Boot)
        #expect(boot.kernel == "/k" && boot.initrd == "/i" && boot.append == "quiet")
        #expect(boot.vm.memory == 256 && boot.vm.cpus == 2 && boot.vm.compatibilityMode == CompatibilityMode.none)
        #expect(boot.vm.timings && boot.vm.timeout == 30 && boot.vm.verbose == 2)
        #expect(boot.console == "file:/tmp/c")
    }

    @Test(arguments: [
        ["boot", "--cpus", "0"], ["boot", "--cpus", "33"], ["boot", "--memory", "1"],
        ["boot", "--compat", "sometimes"], ["boot", "--console", "tty"], ["boot", "--timeout", "-1"],
        ["boot", "--no-such-flag"],
    ])
    func rejectsBadArguments(arguments: [String]) {
        #expect(throws: (any Error).self) { try Skiff.parseAsRoot(arguments) }
    }

    @Test func aFileThatIsNotAKernelIsOneLineOfError() throws {
        var command = try Skiff.parseAsRoot(["boot", "--kernel", "/etc/hostname", "--console", "none"])
        #expect { try command.run() } throws: { error in
            let message = Skiff.message(for: error)
            return message == "/etc/hostname: not a Linux kernel: neither an ELF vmlinux nor a bzImage" && !message.contains("\n")
        }
    }
}
