import Testing
@testable import SkiffCLI
@testable import SkiffKit

@Suite struct BootArgumentTests {
    @Test func parsesEveryBootOption() throws {
        let command = try Skiff.parse([
            "boot", "--kernel", "/k", "--initrd", "/i", "--append", "quiet", "--memory", "256", "--cpus", "2",
            "--console", "file:/tmp/c", "--compat", "none", "--timings", "--timeout", "30", "-vv",
        ])
        let boot = try #require(command as? Skiff.Boot)
        #expect(boot.kernel == "/k" && boot.initrd == "/i" && boot.append == "quiet")
        #expect(boot.vm.memory == 256 && boot.vm.cpus == 2 && boot.vm.compatibilityMode == CompatibilityMode.none)
        #expect(boot.vm.timings && boot.vm.timeout == 30 && boot.vm.verbose == 2)
        #expect(boot.console == .file("/tmp/c"))
    }

    /// Each bad value is refused with its own reason (not just any error), and
    /// none of them traps: `inf`, `1e300` and `ip=/` once crashed skiff.
    @Test(arguments: [
        (["boot", "--cpus", "0"], "--cpus 0 is outside 1–32"),
        (["boot", "--cpus", "33"], "--cpus 33 is outside 1–32"),
        (["boot", "--memory", "1"], "--memory 1 MiB is outside 16–1048576 MiB"),
        (["boot", "--compat", "sometimes"], "--compat must be auto, pvm or none, not 'sometimes'"),
        (["boot", "--console", "tty"], "--console must be stdio, none or file:PATH, not 'tty'"),
        (["boot", "--timeout", "0"], "--timeout 0.0 is outside 0.001–31536000 seconds"),
        (["boot", "--timeout", "inf"], "--timeout inf is outside 0.001–31536000 seconds"),
        (["boot", "--timeout", "1e300"], "is outside 0.001–31536000 seconds"),
        (["boot", "--timeout", "2e10"], "is outside 0.001–31536000 seconds"),
        (["boot", "--timeout", "nan"], "--timeout nan is outside"),
        (["boot", "--no-such-flag"], "Unknown option '--no-such-flag'"),
        (["boot", "--disk", ",ro"], "--disk needs a path"),
        (["boot", "--net", "mac=06:00:00:00:00:01"], "--net needs a TAP"),
        (["boot", "--net", "tap=t0,ip=10.0.0.300"], "'10.0.0.300' is not an IPv4 address"),
        (["boot", "--net", "tap=x,ip=/"], "--net: '' is not an IPv4 address"),
        (["boot", "--net", "tap=x,ip=//"], "--net: '' is not an IPv4 address"),
        (["boot", "--net", "tap=x,ip=10.0.0.2/"], "'/' is not a prefix length"),
        (["boot", "--net", "tap=t0,speed=fast"], "unknown key 'speed'"),
        (["boot", "--net", "tap=a-name-far-too-long"], "'a-name-far-too-long' is not a valid interface name"),
        (["boot", "--net", "tap=../x"], "'../x' is not a valid interface name"),
        (["boot", "--disk", "/etc/hostname", "--disk", "/etc/../etc/hostname,ro"], "--disk /etc/../etc/hostname is given twice (also as /etc/hostname)"),
        (["boot", "--net", "tap=t0,ip=10.0.0.2/24", "--net", "tap=t1,ip=10.0.1.2/24"], "ip= can configure one interface only"),
    ])
    func rejectsBadArgumentsWithTheirReason(arguments: [String], reason: String) {
        let message = refusal(of: arguments)
        #expect(message.contains(reason), "\(arguments): \(message)")
    }

    @Test func parsesEveryRestoreOptionAndTheCommandAfterTheDoubleDash() throws {
        let command = try Skiff.parse([
            "restore", "--console", "none", "--override", "vda=/d.img", "--override", "eth0=tap1", "--timeout", "9",
            "--hostname", "clone-1", "--timings", "-v", "--seccomp", "log", "--jail", "--jail-user", "1000:1000",
            "/snapshots/a", "--", "sh", "-c", "--timings",
        ])
        let restore = try #require(command as? Skiff.Restore)
        #expect(restore.directory == "/snapshots/a" && restore.console == ConsoleMode.none)
        #expect(restore.override == ["vda=/d.img", "eth0=tap1"] && restore.timeout == 9 && restore.hostname == "clone-1")
        #expect(restore.timings && restore.verbose == 1 && restore.command == ["sh", "-c", "--timings"])
        #expect(restore.confinement.seccomp == "log" && restore.confinement.jail && restore.confinement.jailUser == "1000:1000")
        #expect(refusal(of: ["restore", "d", "--jail-user", "1000"]).hasPrefix("--jail-user must be UID:GID"))
        let plain = try #require(try Skiff.parse(["restore", "d", "--jail"]) as? Skiff.Restore)
        #expect(JailOptions(user: plain.confinement.jailUser) == JailOptions(user: "65534:65534"), "the default is a good one")
        #expect(refusal(of: ["restore"]) == "Missing expected argument '<directory>'")
        #expect(refusal(of: ["restore", "d", "--hostname", ""]) == "--hostname must be 1 to 64 bytes")
    }

    @Test func imageCommandsParse() throws {
        #expect(try Skiff.parse(["image", "ls"]) is Skiff.Image.List)
        #expect(try Skiff.parse(["image", "prune"]) is Skiff.Image.Prune)
        let remove = try #require(try Skiff.parse(["image", "rm", "abc", "def"]) as? Skiff.Image.Remove)
        #expect(remove.ids == ["abc", "def"])
        #expect(refusal(of: ["image", "ls", "extra"]) == "Unexpected argument 'extra'")
    }

    @Test func parsesRepeatedDisksAndNetworks() throws {
        let command = try Skiff.parse([
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
        let command = try Skiff.parse(["boot", "--kernel", "/etc/hostname", "--console", "none"])
        #expect { try command.run() } throws: { error in
            let message = Skiff.message(for: error)
            return message == "/etc/hostname: not a Linux kernel: neither an ELF vmlinux nor a bzImage" && !message.contains("\n")
        }
    }
}

/// What `skiff` says when it refuses `arguments` ("accepted" if it does not).
func refusal(of arguments: [String]) -> String {
    do {
        _ = try Skiff.parse(arguments)
        return "accepted"
    } catch {
        return Skiff.message(for: error)
    }
}

@Suite struct CommandTreeTests {
    /// The tree users type: "skiff boot" must stay "boot".
    @Test func theCommandTree() {
        var names: [String] = []
        func walk(_ node: Skiff.Node, path: String) {
            #expect(node.name == node.spec.name, "\(path): the name a node is found by is its command's")
            let full = path.isEmpty ? node.name : path + " " + node.name
            names.append(full)
            #expect((node.command == nil) == !node.children.isEmpty, "\(full): a command or a group, not both")
            #expect(node.children.map(\.spec.name) == node.spec.subcommands.map(\.name), "\(full): its help lists its commands")
            for child in node.children { walk(child, path: full) }
        }
        walk(Skiff.tree, path: "")
        #expect(names == ["skiff", "skiff boot", "skiff restore", "skiff run", "skiff image", "skiff image ls",
                          "skiff image rm", "skiff image prune", "skiff bench"])
    }

    /// Every visible option is in its command's help, with its value name
    /// and default; hidden ones are not; no two options share a name.
    @Test func helpShowsEveryVisibleOption() {
        for spec in [Skiff.Boot.spec, Skiff.Restore.spec, Skiff.Run.spec, Skiff.Image.Remove.spec] {
            let help = HelpText.help(spec, path: "skiff " + spec.name)
            for option in spec.options {
                #expect(help.contains(option.synopsis) != option.hidden, "\(spec.name): --\(option.long)")
                if let value = option.defaultValue { #expect(help.contains("(default: \(value))")) }
            }
            #expect(Set(spec.options.map(\.long)).count == spec.options.count, "\(spec.name) declares an option twice")
            let shorts = spec.options.compactMap(\.short)
            #expect(Set(shorts).count == shorts.count, "\(spec.name) declares a short option twice")
            for line in help.split(separator: "\n") { #expect(line.count <= HelpText.width, "\(line)") }
        }
    }
}
