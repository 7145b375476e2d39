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
        ["boot", "--no-such-flag"], ["boot", "--disk", ",ro"], ["boot", "--net", "mac=06:00:00:00:00:01"],
        ["boot", "--net", "tap=t0,ip=10.0.0.300"], ["boot", "--net", "tap=t0,speed=fast"],
        ["boot", "--net", "tap=t0,ip=10.0.0.2/24", "--net", "tap=t1,ip=10.0.1.2/24"],
    ])
    func rejectsBadArguments(arguments: [String]) {
        #expect(throws: (any Error).self) { try Skiff.parseAsRoot(arguments) }
    }

    @Test func parsesRepeatedDisksAndNetworks() throws {
        let command = try Skiff.parseAsRoot([
            "boot", "--disk", "/a.img", "--disk", "/b,c.img,ro", "--net", "tap=tap0,mac=06:00:ac:10:00:02,ip=172.16.0.2/30,gw=172.16.0.1",
            "--net", "tap=tap1", "--no-rng",
        ])
        let boot = try #require(command as? Skiff.Boot)
        var configuration = MachineConfiguration(kernelPath: "/k", commandLine: "")
        try boot.vm.apply(to: &configuration)
        #expect(configuration.disks == [DiskConfiguration(path: "/a.img"), DiskConfiguration(path: "/b,c.img", readOnly: true)])
        #expect(configuration.networks.map(\.tap) == ["tap0", "tap1"])
        #expect(configuration.networks[0].mac?.description == "06:00:ac:10:00:02")
        #expect(configuration.networks[0].kernelParameter(interface: "eth0") == "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off")
        #expect(configuration.networks[1].kernelParameter(interface: "eth1") == nil)
        #expect(!configuration.entropyDevice)
    }

    @Test func aFileThatIsNotAKernelIsOneLineOfError() throws {
        var command = try Skiff.parseAsRoot(["boot", "--kernel", "/etc/hostname", "--console", "none"])
        #expect { try command.run() } throws: { error in
            let message = Skiff.message(for: error)
            return message == "/etc/hostname: not a Linux kernel: neither an ELF vmlinux nor a bzImage" && !message.contains("\n")
        }
    }
}
