import Foundation
import Glibc
@testable import Images
import Testing
import TestSupport
@testable import Container
@testable import SkiffKit

let haveE2fsprogs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    && ["/usr/sbin/debugfs", "/sbin/debugfs"].contains { FileManager.default.isExecutableFile(atPath: $0) }

@Suite(.enabled(if: haveE2fsprogs, "needs mkfs.ext4 and debugfs (e2fsprogs)"))
struct ImageStoreTests {
    /// A two-layer image: a whiteout, a symlink, a user database.
    func makeLayout(_ sandbox: Sandbox, content: String = "hello\n") throws -> ImageReference {
        let layout = try LayoutBuilder(sandbox.path + "/layout")
        func layer(_ name: String, _ entries: [TarWriter.Entry], _ compression: TarWriter.Compression) throws -> Descriptor {
            try layout.blob(Array(try Data(contentsOf: URL(fileURLWithPath: sandbox.layer(name, entries, compression: compression)))),
                            mediaType: compression == .zstd ? "application/vnd.oci.image.layer.v1.tar+zstd" : "application/vnd.oci.image.layer.v1.tar+gzip")
        }
        let layers = [
            try layer("base", [.directory("etc"), .file("etc/passwd", "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/srv:/bin/sh\n"),
                               .file("etc/group", "root:x:0:\nweb:x:33:\n"), .file("etc/old", "gone"),
                               .file("srv/index.html", content, uid: 33, gid: 33)], .gzip),
            try layer("top", [.file("etc/.wh.old", ""), .symlink("www", target: "srv")], .zstd),
        ]
        var defaults = ImageConfiguration.RunDefaults()
        defaults.Cmd = ["/bin/sh"]
        try layout.image(layers: layers, defaults: defaults)
        return .layout(path: layout.path, tag: nil)
    }

    func debugfs(_ disk: String, _ request: String) throws -> String {
        try runProgram(["/bin/sh", "-c", "PATH=/usr/sbin:/sbin:$PATH debugfs -R '\(request)' '\(disk)' 2>/dev/null"]).stdout
    }

    @Test func buildsAnExt4DiskOnceThenServesItFromTheCache() throws {
        let sandbox = try Sandbox()
        let store = ImageStore(directory: sandbox.path + "/store")
        let reference = try makeLayout(sandbox)
        let source = try ImageSource.open(reference)

        let first = try store.rootDisk(for: source)
        #expect(first.built)
        #expect(first.path == store.directory + "/" + source.id.dropFirst(7) + "/rootfs.ext4")
        #expect(try debugfs(first.path, "cat /srv/index.html") == "hello\n")
        #expect(try debugfs(first.path, "stat /srv/index.html").contains("User:    33   Group:    33"))
        #expect(try debugfs(first.path, "stat /www").contains("Fast link dest: \"srv\""))
        #expect(!(try debugfs(first.path, "ls /etc")).contains("old"), "the whiteout removed etc/old")
        #expect(try first.entry.users.resolve("web") == .init(uid: 33, gid: 33, groups: [33], home: "/srv"))
        #expect(first.entry.layerCount == 2 && first.entry.diskBytes % (1 << 20) == 0)
        let fileSize = try #require(try FileManager.default.attributesOfItem(atPath: first.path)[.size] as? Int64)
        #expect(fileSize == first.entry.diskBytes)

        let second = try store.rootDisk(for: try ImageSource.open(reference))
        #expect(!second.built && second.path == first.path && second.entry == first.entry)
        #expect(store.list().map(\.id) == [source.id])
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory).sorted() == [".lock", String(source.id.dropFirst(7))],
                "no scratch left behind")
    }

    @Test func aDiskInUseIsNotRemovedOtherwiseRmAndPruneRemove() throws {
        let sandbox = try Sandbox()
        let store = ImageStore(directory: sandbox.path + "/store")
        let disk = try store.rootDisk(for: try ImageSource.open(try makeLayout(sandbox)))

        // A running VM's read-only disk holds a shared lock (DiskImage).
        let holder = open(disk.path, O_RDONLY)
        #expect(flock(holder, LOCK_SH) == 0)
        #expect(throws: MachineError.self) { try store.remove(disk.entry.shortID) }
        // Its snapshots stay, but one a dead skiff half-wrote is reclaimed.
        let snapshots = String(disk.path.dropLast("rootfs.ext4".count)) + "snapshots"
        var deadPID: pid_t = 4_194_000
        while kill(deadPID, 0) == 0 || errno != ESRCH { deadPID += 1 }
        for name in ["0123abcd", "0123abcd.tmp-\(deadPID)", "4567.tmp-\(getpid())"] {
            try FileManager.default.createDirectory(atPath: snapshots + "/" + name, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: snapshots + "/" + name + "/memory", contents: Data([1]))
        }
        let pruned = try store.prune()
        #expect(pruned.removed.isEmpty)
        #expect(pruned.leftovers.contains { $0.hasSuffix("snapshots/0123abcd.tmp-\(deadPID)") })
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshots).sorted() == ["0123abcd", "4567.tmp-\(getpid())"])
        close(holder)

        #expect(throws: MachineError.self) { try store.remove("zz-not-hex") }
        #expect(throws: MachineError.self) { try store.remove("0000") }
        #expect(try store.remove(String(disk.entry.shortID.prefix(6))).id == disk.entry.id)
        #expect(store.list().isEmpty)
        _ = try store.rootDisk(for: try ImageSource.open(try makeLayout(sandbox)))
        #expect(try store.prune().removed.count == 1 && store.list().isEmpty)
    }

    /// A skiff killed while it built a disk leaves `.build-HEX-PID`; prune
    /// reclaims it (and reports allocated bytes), but never a live build's.
    @Test func pruneReclaimsTheScratchOfDeadBuildsOnly() throws {
        let sandbox = try Sandbox()
        let store = ImageStore(directory: sandbox.path + "/store")
        var deadPID: pid_t = 4_194_000
        while kill(deadPID, 0) == 0 || errno != ESRCH { deadPID += 1 }
        let dead = sandbox.path + "/store/.build-abcd-\(deadPID)"
        let live = sandbox.path + "/store/.build-abcd-\(getpid())"
        for directory in [dead, live] {
            try FileManager.default.createDirectory(atPath: directory + "/rootfs", withIntermediateDirectories: true)
            try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: directory + "/rootfs/blob"))
        }
        let report = try store.prune()
        #expect(report.leftovers == [".build-abcd-\(deadPID)"])
        #expect(report.reclaimedBytes >= 1 << 20)
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: live + "/rootfs/blob"), "a running build's scratch stays")
    }

    /// `skiff image prune` also drops the OCI runtime's ready guests (rebuilt
    /// by the next create) and a dead writer's half, never a live writer's.
    @Test func pruneRemovesTheReadyGuestsButNotOneBeingWritten() throws {
        let sandbox = try Sandbox()
        let ready = sandbox.path + "/oci-ready"
        var deadPID: pid_t = 4_194_000
        while kill(deadPID, 0) == 0 || errno != ESRCH { deadPID += 1 }
        for name in ["0b673a225c6a540d5c1b52ac", "dc29f9b6f1504360b807182d.tmp-\(deadPID)", "aaaa.tmp-\(getpid())"] {
            try FileManager.default.createDirectory(atPath: ready + "/" + name, withIntermediateDirectories: true)
            try Data(repeating: 1, count: 1 << 16).write(to: URL(fileURLWithPath: ready + "/" + name + "/memory"))
            FileManager.default.createFile(atPath: ready + "/" + name + "/state", contents: Data([1]))
        }
        let pruned = RunSnapshots.pruneBundleReadyGuests(in: ready)
        #expect(pruned.removed == ["0b673a225c6a540d5c1b52ac", "dc29f9b6f1504360b807182d.tmp-\(deadPID)"])
        #expect(pruned.bytes >= 2 << 16)
        #expect(try FileManager.default.contentsOfDirectory(atPath: ready) == ["aaaa.tmp-\(getpid())"])
        #expect(RunSnapshots.pruneBundleReadyGuests(in: sandbox.path + "/none").removed.isEmpty, "no directory: nothing to do")
        #expect(try ImageStore(directory: sandbox.path + "/never-used").prune().removed.isEmpty, "a store never used prunes to nothing")
    }

    /// A layer that expands past the image's budget fails the build with the
    /// layer and entry named, and leaves the store as it was.
    @Test func anImageThatExpandsPastItsBudgetLeavesTheStoreAsItWas() throws {
        let sandbox = try Sandbox()
        let layout = try LayoutBuilder(sandbox.path + "/bomb")
        let bombPath = sandbox.layer("bomb", [.bytes("zeros", [UInt8](repeating: 0, count: 32 << 20))], compression: .gzip)
        let layer = try layout.blob(Array(try Data(contentsOf: URL(fileURLWithPath: bombPath))),
                                    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip")
        var defaults = ImageConfiguration.RunDefaults()
        defaults.Cmd = ["/bin/sh"]
        try layout.image(layers: [layer], defaults: defaults)
        let store = ImageStore(directory: sandbox.path + "/store", maxImageSize: 4 << 20)
        #expect { try store.rootDisk(for: try ImageSource.open(.layout(path: layout.path, tag: nil))) } throws: { error in
            "\(error)".contains("stopped at 'zeros': the image expands to more than 4 MiB")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory) == [".lock"], "no half-built disk or scratch")
    }

    @Test func diskSizeCoversTheTreeWithHeadroom() throws {
        #expect(RootDiskBuilder.size(forTree: 0, inodes: 0) == 17 << 20)
        let big = RootDiskBuilder.size(forTree: 100 << 20, inodes: 5000)
        #expect(big >= (125 << 20) + (16 << 20) && big % (1 << 20) == 0)
        let sandbox = try Sandbox()
        try Data(repeating: 1, count: 5000).write(to: URL(fileURLWithPath: sandbox.root + "/a"))
        try FileManager.default.createDirectory(atPath: sandbox.root + "/d", withIntermediateDirectories: true)
        try FileManager.default.linkItem(atPath: sandbox.root + "/a", toPath: sandbox.root + "/d/b")
        let measured = try RootDiskBuilder.measure(sandbox.root)
        #expect(measured.inodes == 3, "root, a (linked twice, counted once), d")
        #expect(measured.bytes == 4096 * 2 + 8192)
    }
}
