import Devices
import Glibc
import Platform
import Testing
import X86_64
@testable import KVM
@testable import SkiffKit

@Suite struct KernelCommandLineTests {
    @Test func defaultsThenProfileThenAppend() {
        let line = KernelCommandLine.compose(base: nil, append: "loglevel=8", profile: .pvm)
        #expect(line.hasPrefix("console=ttyS0 reboot=k panic=-1"))
        #expect(line.hasSuffix("skiff.pvm_syscall skiff.pvm_segments loglevel=8"))
    }

    @Test func profileParametersStayBeforeInitArguments() {
        let line = KernelCommandLine.compose(base: "console=ttyS0", append: "quiet -- /bin/sh -c \"exit 3\"", profile: .pvm)
        #expect(line.hasPrefix("console=ttyS0 noxsave "))
        #expect(line.hasSuffix("skiff.pvm_syscall skiff.pvm_segments quiet -- /bin/sh -c \"exit 3\""))
        let replaced = KernelCommandLine.compose(base: "-- /init-arg", append: nil, profile: .none)
        #expect(replaced == "-- /init-arg")
    }

    @Test func splitsAtTheFirstStandaloneDoubleDash() {
        #expect(KernelCommandLine.splitAtInitArguments("a --b -- c -- d") == ("a --b", "c -- d"))
        #expect(KernelCommandLine.splitAtInitArguments("a  --  b") == ("a", "b"))
        #expect(KernelCommandLine.splitAtInitArguments("a --") == ("a", ""))
        #expect(KernelCommandLine.splitAtInitArguments("-- x") == ("", "x"))
        #expect(KernelCommandLine.splitAtInitArguments("--x a-- --y") == ("--x a-- --y", nil))
    }

    @Test func hardwareHostsGetNoWorkarounds() {
        let line = KernelCommandLine.compose(base: nil, append: nil, profile: .resolve(.auto, host: .hardware))
        #expect(line == KernelCommandLine.defaults.joined(separator: " "))
        #expect(!line.contains("clearcpuid") && !line.contains("skiff.pvm_syscall") && !line.contains("skiff.pvm_segments"))
    }
}

@Suite struct HostProfileTests {
    @Test func detectsPVMByItsModule() throws {
        let directory = "/tmp/skiff-modules-\(getpid())"
        mkdir(directory, 0o755)
        defer { rmdir(directory + "/kvm_pvm"); rmdir(directory) }
        #expect(HostKind.detect(moduleDirectory: directory) == .hardware)
        mkdir(directory + "/kvm_pvm", 0o755)
        #expect(HostKind.detect(moduleDirectory: directory) == .pvm)
    }

    @Test func compatModes() {
        #expect(CompatibilityProfile.resolve(.auto, host: .pvm) == .pvm)
        #expect(CompatibilityProfile.resolve(.auto, host: .hardware) == .none)
        #expect(CompatibilityProfile.resolve(.pvm, host: .hardware) == .pvm)
        #expect(CompatibilityProfile.resolve(.none, host: .pvm) == .none)
        #expect(MachineConfiguration.platform(compatibility: .none, hiddenCPUFeatures: []).workaroundParameters.isEmpty)
    }
}

@Suite struct CPUIDTests {
    let supported = [
        CPUIDEntry(function: 1, ebx: 0xFF00_0800, ecx: 0, edx: 0),
        CPUIDEntry(function: 0xB, index: 0, edx: 0),
        CPUIDEntry(function: 0x4000_0001, eax: 0xFFFF_FFFF),
    ]

    @Test func eachVCPUGetsItsAPICIDAndTheHypervisorBit() {
        let cpu3 = X86CPUSetup.cpuid(supported, vcpu: 3, of: 4)
        #expect(cpu3[0].ebx >> 24 == 3)
        #expect(cpu3[0].ebx >> 16 & 0xFF == 4)
        #expect(cpu3[0].ebx & 0xFFFF == 0x0800)
        #expect(cpu3[0].ecx & (1 << 31) != 0)
        #expect(cpu3[1].edx == 3)
        #expect(cpu3[2].eax == 0xFFFF_FFFF)
    }

    @Test func pvmProfileHidesHypercallFeatures() {
        let entries = X86CPUSetup.cpuid(supported, vcpu: 0, of: 1, hiddenKVMFeatures: X86Workarounds.pvm.hiddenKVMFeatures)
        #expect(entries[2].eax & (1 << 11) == 0) // PV_SEND_IPI
        #expect(entries[2].eax & (1 << 7) == 0)  // PV_UNHALT
        #expect(entries[2].eax & (1 << 3) != 0)  // kvmclock stays
    }
}

@Suite struct StopReasonTests {
    @Test func exitStatuses() {
        #expect(StopReason.reset.exitStatus == 0)
        #expect(StopReason.powerOff.exitStatus == 0)
        #expect(StopReason.timeout(seconds: 1).exitStatus == 124)
        #expect(StopReason.guestCrashed.exitStatus == 1)
        #expect(StopReason.emulationFailure("x").exitStatus == 1)
    }

    @Test func guestArtifactsParseTheScriptsLines() throws {
        let parsed = try GuestArtifacts.parse("kernel=/c/vmlinux\nbzimage=/c/bzImage\ninitrd=/c/i.cpio\n", from: "s")
        #expect(parsed == GuestArtifacts(kernel: "/c/vmlinux", bzImage: "/c/bzImage", initrd: "/c/i.cpio"))
        #expect(throws: MachineError.self) { try GuestArtifacts.parse("nothing useful", from: "s") }
    }

    @Test func consoleModes() {
        #expect(ConsoleMode(argument: "stdio") == .stdio)
        #expect(ConsoleMode(argument: "file:/tmp/x") == .file("/tmp/x"))
        #expect(ConsoleMode(argument: "file:") == nil)
        #expect(ConsoleMode(argument: "tty") == nil)
    }
}

@Suite struct DeviceConfigurationTests {
    @Test func devicesAreAnnouncedBeforeInitArguments() {
        let line = KernelCommandLine.inserting(["virtio_mmio.device=4K@0xd0000000:5"], into: "console=ttyS0 -- /bin/sh -c \"x -- y\"")
        #expect(line == "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 -- /bin/sh -c \"x -- y\"")
        #expect(KernelCommandLine.inserting(["a=1"], into: "quiet") == "quiet a=1")
        #expect(KernelCommandLine.inserting([], into: "quiet -- x") == "quiet -- x")
    }

    @Test func diskArguments() throws {
        #expect(try DiskConfiguration(argument: "d.img") == DiskConfiguration(path: "d.img"))
        #expect(try DiskConfiguration(argument: "d.img,ro") == DiskConfiguration(path: "d.img", readOnly: true))
        #expect(try DiskConfiguration(argument: "d.img,rw") == DiskConfiguration(path: "d.img"))
        #expect(throws: MachineError.self) { try DiskConfiguration(argument: "") }
    }

    @Test func networkArgumentsAndTheIPParameter() throws {
        let network = try NetworkConfiguration(argument: "tap=tap0,ip=10.0.2.15")
        #expect(network.prefixLength == 24 && network.gateway == nil)
        #expect(network.kernelParameter(interface: "eth0") == "ip=10.0.2.15:::255.255.255.0::eth0:off")
        #expect(IPv4Address("1.2.3") == nil && IPv4Address("1.2.3.256") == nil && IPv4Address("01.2.3.4")?.description == "1.2.3.4")
        for bad in ["", "tap=", "tap=t0,ip=1.2.3.4/33", "tap=t0,gw=x", "tap0"] {
            #expect(throws: MachineError.self, "\(bad)") { try NetworkConfiguration(argument: bad) }
        }
    }

    @Test func devicesGetWindowsAndIRQsInOrder() {
        let layout = MachineConfiguration(kernelPath: "k", commandLine: "").platform.deviceLayout
        let second = VirtioDevices.place(1, in: layout)
        #expect(VirtioMMIOTransport.kernelParameter(base: second.base, irq: second.irq) == "virtio_mmio.device=4K@0xd0001000:6")
        #expect(VirtioDevices.driveLetter(0) == "a" && VirtioDevices.driveLetter(25) == "z" && VirtioDevices.driveLetter(26) == "aa")
    }
}

@Suite struct CPUFeatureHidingTests {
    @Test func rdrandAndRdseedDisappearFromTheirLeavesOnly() throws {
        let supported = [CPUIDEntry(function: 1, index: 0, ecx: 0xFFFF_FFFF), CPUIDEntry(function: 7, index: 0, ebx: 0xFFFF_FFFF),
                         CPUIDEntry(function: 7, index: 1, ebx: 0xFFFF_FFFF)]
        let plain = X86CPUSetup.cpuid(supported, vcpu: 0, of: 1)
        let hidden = X86CPUSetup.cpuid(supported, vcpu: 0, of: 1, hiddenFeatures: ["rdrand", "rdseed"])
        #expect(plain[0].ecx & 1 << 30 != 0 && hidden[0].ecx & 1 << 30 == 0)
        #expect(plain[1].ebx & 1 << 18 != 0 && hidden[1].ebx & 1 << 18 == 0)
        #expect(hidden[0].ecx | 1 << 30 == plain[0].ecx, "only that bit")
        #expect(hidden[2] == plain[2], "subleaf 1 untouched")
        // The guest kernel is told too (on a PVM host its CPUID is not the
        // VMM's), in the kernel's part of the line only.
        let hiding = MachineConfiguration.platform(compatibility: .none, hiddenCPUFeatures: ["rdrand"])
        #expect(try KernelCommandLine.announcingHiddenFeatures(of: hiding, in: "quiet clearcpuid=smap,pcid x=1 -- sh -c clearcpuid=a")
                == "quiet clearcpuid=smap,pcid,rdrand x=1 -- sh -c clearcpuid=a")
        #expect(try KernelCommandLine.announcingHiddenFeatures(of: hiding, in: "-- x") == "clearcpuid=rdrand -- x")
        // The PVM profile leaves room for both; a list Linux would cut short is refused.
        let pvm = KernelCommandLine.compose(base: nil, append: nil, profile: .pvm)
        let both = MachineConfiguration.platform(compatibility: .pvm, hiddenCPUFeatures: ["rdrand", "rdseed"])
        #expect(throws: Never.self) { try KernelCommandLine.announcingHiddenFeatures(of: both, in: pvm) }
        #expect(throws: BootError(file: BootError.commandLineFile, "clearcpuid= would be 128 bytes; Linux reads 127 (hide fewer CPU features)")) {
            try KernelCommandLine.announcingHiddenFeatures(of: both, in: "clearcpuid=" + String(repeating: "x", count: 114))
        }
        var configuration = MachineConfiguration(kernelPath: "k", commandLine: "")
        configuration.hiddenCPUFeatures = ["sse"]
        #expect(throws: MachineError.self) { try configuration.validate() }
    }
}
