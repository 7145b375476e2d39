import Foundation
import Glibc
import Testing
import TestSupport
@testable import SkiffKit

/// `skiff boot --jail` of a tiny guest that spins: the VMM process seen
/// from outside while it runs, then stopped by a signal through its parent.
@Suite(.enabled(if: kvmUsable && getuid() == 0, "needs /dev/kvm and root"), .serialized)
struct JailTests {
    static let guest = tinyGuest(spin: true) ?? "/nonexistent/tiny-guest"

    func status(_ pid: Int32) -> [String: String] {
        var fields: [String: String] = [:]
        for line in ((try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? "").split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    func namespace(_ pid: String, _ kind: String) -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")) ?? "?"
    }

    @Test func theJailedVMMIsConfinedAndStopsBySignal() throws {
        // A TAP from the host's network namespace, opened before the jail and kept.
        let tap = "skiffjail\(getpid() % 100_000)"
        let made = try runProgram(["ip", "tuntap", "add", tap, "mode", "tap"])
        defer { _ = try? runProgram(["ip", "tuntap", "del", tap, "mode", "tap"]) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: skiffExecutable)
        process.arguments = ["boot", "--jail", "--jail-user", "65533:65532", "--kernel", Self.guest, "--memory", "32",
                             "--cpus", "2", "--console", "none", "--timeout", "60"] + (made.status == 0 ? ["--net", "tap=\(tap)"] : [])
        process.standardInput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let parent = process.processIdentifier
        var child: Int32?
        for _ in 0..<100 where child == nil {
            usleep(50_000)
            let children = (try? String(contentsOfFile: "/proc/\(parent)/task/\(parent)/children", encoding: .utf8)) ?? ""
            child = children.split(separator: " ").first.flatMap { Int32($0) }
        }
        let vmm = try #require(child, "the jail's child (the VMM)")
        usleep(700_000) // past setup, into KVM_RUN
        let fields = status(vmm)
        #expect(fields["Uid"]?.split(separator: "\t").allSatisfy { $0 == "65533" } == true, "\(fields["Uid"] ?? "")")
        #expect(fields["Gid"]?.split(separator: "\t").allSatisfy { $0 == "65532" } == true, "\(fields["Gid"] ?? "")")
        #expect(fields["Groups"] == "")
        #expect(fields["NoNewPrivs"] == "1")
        #expect(fields["CapEff"] == "0000000000000000" && fields["CapPrm"] == "0000000000000000" && fields["CapBnd"] == "0000000000000000")
        #expect(fields["NSpid"]?.split(separator: "\t").last == "1", "the VMM is PID 1 of its own PID namespace: \(fields["NSpid"] ?? "")")
        for kind in ["mnt", "pid", "net", "ipc"] {
            #expect(namespace(String(vmm), kind) != namespace("self", kind), "its own \(kind) namespace")
        }
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmm)/task")
        #expect(tasks.count >= 4, "main, signals, devices, 2 vCPUs: \(tasks)")
        for task in tasks {
            #expect(try String(contentsOfFile: "/proc/\(vmm)/task/\(task)/status", encoding: .utf8).contains("Seccomp:\t2"))
        }
        if made.status == 0 {
            let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmm)/fd")
                .compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vmm)/fd/\($0)") }
            #expect(descriptors.contains("/dev/net/tun"), "the TAP opened before the jail is kept: \(descriptors)")
        }
        // Its root: nothing but the log's time zone (disks, TAPs and /dev/kvm are open descriptors).
        let root = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmm)/root").sorted()
        #expect(Set(root).isSubset(of: ["etc", "usr"]), "\(root)")
        // The cgroup, with the limits: 32 MiB + 256 MiB, two CPUs.
        let cgroups = try String(contentsOfFile: "/proc/\(vmm)/cgroup", encoding: .utf8)
        let name = "skiff-jail-\(parent)"
        #expect(cgroups.contains(name), "\(cgroups)")
        let memoryLimit: String, cpuLimit: String
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") {
            memoryLimit = try String(contentsOfFile: "/sys/fs/cgroup/\(name)/memory.max", encoding: .utf8)
            cpuLimit = try String(contentsOfFile: "/sys/fs/cgroup/\(name)/cpu.max", encoding: .utf8)
        } else {
            memoryLimit = try String(contentsOfFile: "/sys/fs/cgroup/memory/\(name)/memory.limit_in_bytes", encoding: .utf8)
            cpuLimit = try String(contentsOfFile: "/sys/fs/cgroup/cpu/\(name)/cpu.cfs_quota_us", encoding: .utf8)
        }
        #expect(memoryLimit.trimmingCharacters(in: .whitespacesAndNewlines) == String((32 + 256) << 20))
        #expect(cpuLimit.hasPrefix("200000"), "\(cpuLimit)")

        kill(parent, SIGTERM)
        process.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 143, "\(stderr)")
        #expect(stderr.contains("stopped by SIGTERM"), "\(stderr)")
        #expect(kill(vmm, 0) != 0, "the VMM is gone")
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/\(name)") && !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(name)"),
                "the cgroup is removed")
    }

    @Test func whatTheJailCannotDoYetIsRefusedWithItsReason() throws {
        let console = try runProgram([skiffExecutable, "boot", "--jail", "--kernel", Self.guest, "--console", "file:/tmp/skiff-jail-console-\(getpid())"])
        #expect(console.status == 1)
        #expect(console.stderr.contains("--jail with --console file: is not supported"), "\(console.stderr)")
        let root = try runProgram([skiffExecutable, "boot", "--jail", "--jail-user", "0:0", "--kernel", Self.guest])
        #expect(root.status == 64)
        #expect(root.stderr.contains("--jail-user must be UID:GID, numbers, not root"), "\(root.stderr)")
    }
}
