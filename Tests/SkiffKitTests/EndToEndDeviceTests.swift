import Foundation
import Testing
import TestSupport
@testable import SkiffKit

/// The `skiff` executable built next to this test binary.
let skiffExecutable = builtExecutable("skiff")

let canMakeNetworkNamespaces = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/net/tun")
    && ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].contains { FileManager.default.isExecutableFile(atPath: $0) }

/// One boot of the real guest with every virtio device, checking what a user
/// would: an ext4 disk written by the guest and read back on the host, a
/// read-only disk the guest cannot write, /dev/hwrng, and TCP both ways over a
/// TAP inside a network namespace this test creates.
@Suite(.enabled(if: kvmUsable, "needs /dev/kvm"), .enabled(if: canMakeNetworkNamespaces, "needs root, ip and /dev/net/tun"),
       .serialized, .timeLimit(.minutes(15)))
struct EndToEndDeviceTests {
    static let guestScript = """
        mkdir -p /rw
        if mount -t ext4 /dev/vda /rw && echo "written by the guest" > /rw/hello.txt && umount /rw; then echo "rw: ok"; fi
        if echo x > /ro/new; then echo "ro fs: WRITABLE"; else echo "ro fs: refused"; fi
        if dd if=/dev/zero of=/dev/vdb bs=512 count=1; then echo "ro dev: WRITABLE"; else echo "ro dev: refused"; fi
        echo "ro flag: $(cat /sys/block/vdb/ro), note: $(cat /ro/note.txt)"
        echo "rng: $(head -c 32 /dev/hwrng | od -An -tx1 | tr -d ' \\n')"
        echo "eth0: $(cat /sys/class/net/eth0/address)"
        echo "hello from the guest" | nc 10.0.2.1 7000 && echo "net out: ok"
        echo "served by the guest" | nc -l -p 7001 && echo "net in: ok"
        exit 7
        """

    /// Host side, in the namespace: accepts the guest's line, then fetches one from the guest.
    static let hostPeer = """
        import socket, sys, time
        server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("10.0.2.1", 7000)); server.listen(1); server.settimeout(600)
        connection, peer = server.accept(); data = b""
        while not data.endswith(b"\\n"):
            chunk = connection.recv(4096)
            if not chunk: break
            data += chunk
        connection.close()
        print("host got from", peer[0] + ":", data.decode().strip(), flush=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                client = socket.create_connection(("10.0.2.15", 7001), timeout=10); reply = b""
                while not reply.endswith(b"\\n"):
                    chunk = client.recv(4096)
                    if not chunk: break
                    reply += chunk
                client.close()
                print("host fetched:", reply.decode().strip(), flush=True)
                break
            except OSError:
                time.sleep(0.5)
        """

    @Test func guestUsesDisksEntropyAndNetwork() throws {
        _ = try GuestArtifacts.ensureBuilt()
        #expect(FileManager.default.isExecutableFile(atPath: skiffExecutable), "build skiff first: \(skiffExecutable)")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-e2e-\(UUID())")
        try FileManager.default.createDirectory(at: work.appendingPathComponent("ro"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let rw = work.appendingPathComponent("rw.img").path, ro = work.appendingPathComponent("ro.img").path
        try "hello from the host\n".write(to: work.appendingPathComponent("ro/note.txt"), atomically: true, encoding: .utf8)
        try Self.guestScript.write(to: work.appendingPathComponent("ro/check.sh"), atomically: true, encoding: .utf8)
        #expect(try runProgram(["mkfs.ext4", "-q", "-F", rw, "32M"]).status == 0)
        #expect(try runProgram(["mkfs.ext4", "-q", "-F", "-d", work.appendingPathComponent("ro").path, ro, "8M"]).status == 0)
        let roBefore = try Data(contentsOf: URL(fileURLWithPath: ro))

        let namespace = "skiff-e2e-\(getpid())"
        #expect(try runProgram(["ip", "netns", "add", namespace]).status == 0)
        defer { _ = try? runProgram(["ip", "netns", "delete", namespace]) }
        let setUp = try runProgram(["ip", "netns", "exec", namespace, "sh", "-c",
            "ip link set lo up && ip tuntap add skiff0 mode tap && ip addr add 10.0.2.1/24 dev skiff0 && ip link set skiff0 up"])
        #expect(setUp.status == 0, "\(setUp.stderr)")

        let peerScript = work.appendingPathComponent("peer.py").path
        try Self.hostPeer.write(toFile: peerScript, atomically: true, encoding: .utf8)
        let peerOutput = work.appendingPathComponent("peer.out")
        _ = FileManager.default.createFile(atPath: peerOutput.path, contents: nil)
        let peer = Process()
        peer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        peer.arguments = ["ip", "netns", "exec", namespace, "python3", peerScript]
        peer.standardOutput = try FileHandle(forWritingTo: peerOutput)
        peer.standardError = peer.standardOutput
        try peer.run()
        defer { if peer.isRunning { peer.terminate() } }

        let result = try runProgram([
            "ip", "netns", "exec", namespace, skiffExecutable, "boot", "--timings", "--timeout", "600",
            "--disk", rw, "--disk", "\(ro),ro", "--net", "tap=skiff0,mac=06:00:0a:00:02:0f,ip=10.0.2.15/24,gw=10.0.2.1",
            "--append=-- /bin/sh -c \"mkdir -p /ro && mount -t ext4 -o ro /dev/vdb /ro && exec /bin/sh /ro/check.sh\"",
        ])
        peer.waitUntilExit()
        let console = result.stdout, peerSaw = try String(contentsOf: peerOutput, encoding: .utf8)
        let context = "stdout:\n\(console)\nstderr:\n\(result.stderr)\npeer:\n\(peerSaw)"

        #expect(result.status == 0, "\(context)")
        #expect(console.contains("skiff-init: /bin/sh exited with status 7"), "\(context)")
        // Block: written in the guest, read on the host after the VM is gone.
        #expect(console.contains("rw: ok"), "\(context)")
        let readBack = try runProgram(["debugfs", "-R", "cat /hello.txt", rw])
        #expect(readBack.stdout == "written by the guest\n", "\(readBack.stderr)")
        // Read-only: the kernel sees the RO feature, refuses both paths, and the image is unchanged.
        #expect(console.contains("ro fs: refused"), "\(context)")
        #expect(console.contains("ro dev: refused"), "\(context)")
        #expect(console.contains("ro flag: 1, note: hello from the host"), "\(context)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: ro)) == roBefore)
        // Entropy: 32 bytes, not all zero.
        let rng = console.split(whereSeparator: \.isNewline).first { $0.hasPrefix("rng: ") }.map { String($0.dropFirst(5)) } ?? ""
        #expect(rng.count == 64 && rng.contains { $0 != "0" }, "\(context)")
        // Network: the MAC we gave, then TCP out to the host and in from it.
        #expect(console.contains("eth0: 06:00:0a:00:02:0f"), "\(context)")
        #expect(peerSaw.contains("host got from 10.0.2.15: hello from the guest"), "\(context)")
        #expect(peerSaw.contains("host fetched: served by the guest"), "\(context)")
        #expect(console.contains("net out: ok") && console.contains("net in: ok"), "\(context)")
        // The VMM's own account.
        #expect(result.stderr.contains("virtio-blk vdb (\(ro), read-only): "), "\(context)")
        #expect(result.stderr.contains("0 writes (0 bytes)"), "\(context)")
        #expect(!result.stderr.contains("guest driver error"), "\(context)")
    }

    @Test func badDeviceOptionsFailBeforeBooting() throws {
        let missing = try runProgram([skiffExecutable, "boot", "--disk", "/nonexistent/disk.img"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/disk.img: No such file or directory"), "\(missing.stderr)")
        let badMAC = try runProgram([skiffExecutable, "boot", "--net", "tap=x,mac=zz"])
        #expect(badMAC.status != 0)
        #expect(badMAC.stderr.contains("not a unicast MAC address"), "\(badMAC.stderr)")
        let badTap = try runProgram([skiffExecutable, "boot", "--net", "tap=this-name-is-far-too-long"])
        #expect(badTap.status != 0)
        #expect(badTap.stderr.contains("not a valid interface name"), "\(badTap.stderr)")
    }
}
