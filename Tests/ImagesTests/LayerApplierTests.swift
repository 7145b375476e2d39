import Foundation
import Testing
import TestSupport
@testable import Images

@Suite struct LayerApplierTests {
    @Test func layersStackWithWhiteoutsOpaqueDirectoriesAndLinks() throws {
        let sandbox = try Sandbox()
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
        let base = sandbox.layer("base", [
            .directory("etc/"), .file("etc/motd", "base\n"),
            .directory("data/"), .file("data/a", "a\n"), .file("data/b", "b\n"),
            .directory("opt/"), .file("opt/old", "old\n"),
            .directory("usr/lib/"), .symlink("lib", target: "usr/lib"),
            .file("bin/tool", "#!/bin/sh\n", mode: 0o4755, uid: 1000, gid: 1000),
        ], compression: .gzip)
        let top = sandbox.layer("top", [
            .file("data/.wh.a", ""),
            .file("opt/new", "new\n"),            // created before the opaque marker: kept
            .file("opt/.wh..wh..opq", ""),
            .hardLink("bin/tool2", target: "bin/tool"),
            .file("lib/libx.so", "x\n"),          // through the lib -> usr/lib symlink
            .directory("etc/"), .file("etc/motd", "top\n"),   // as real layers do, the parent comes along
        ], compression: .zstd)
        let first = try applier.apply(layerAt: base, name: "base")
        #expect(first.files == 5 && first.directories == 4 && first.symlinks == 1)
        let second = try applier.apply(layerAt: top, name: "top")
        #expect(second.whiteouts == 1 && second.opaqueDirectories == 1 && second.hardLinks == 1)
        // A directory's time is set after its contents, so adding etc/motd did not spoil it.

        #expect(!sandbox.exists("data/a"))
        #expect(sandbox.contents("data/b") == "b\n")
        #expect(!sandbox.exists("opt/old"))
        #expect(sandbox.contents("opt/new") == "new\n")
        #expect(sandbox.contents("etc/motd") == "top\n")
        #expect(sandbox.linkTarget("lib") == "usr/lib")
        #expect(sandbox.contents("usr/lib/libx.so") == "x\n")
        let tool = try #require(sandbox.stat("bin/tool")), tool2 = try #require(sandbox.stat("bin/tool2"))
        #expect(tool.st_ino == tool2.st_ino && tool.st_nlink == 2)
        #expect(tool.st_mode & 0o7777 == 0o4755)
        if geteuid() == 0 { #expect(tool.st_uid == 1000 && tool.st_gid == 1000) }
        #expect(tool.st_mtim.tv_sec == 1_700_000_000)
        #expect(sandbox.stat("etc")?.st_mtim.tv_sec == 1_700_000_000)
        #expect(sandbox.strays.isEmpty)
    }

    @Test(arguments: ["../evil", "a/../../evil", "./../evil", "a/b/../../../evil"])
    func dotDotAboveTheRootIsRefused(path: String) throws {
        let sandbox = try Sandbox()
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
        let layer = sandbox.layer("bad", [.file(path, "pwned\n")])
        #expect(throws: ImageError.escapesRoot(layer: "sha256:bad", path: path)) {
            try applier.apply(layerAt: layer, name: "sha256:bad")
        }
        #expect(sandbox.strays.isEmpty)
    }

    @Test func absolutePathsAndSymlinksOutwardsStayInside() throws {
        let sandbox = try Sandbox()
        let outside = sandbox.path + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "host\n".write(toFile: outside + "/file", atomically: true, encoding: .utf8)
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
        let layer1 = sandbox.layer("one", [
            .file("/etc/absolute", "inside\n"),
            .symlink("escape", target: outside),             // absolute, at the host's directory
            .symlink("up", target: "../../../../.."),         // climbs
            .symlink("victim", target: outside + "/file"),
        ])
        let layer2 = sandbox.layer("two", [
            .file("escape/pwned", "1\n"),
            .file("up/pwned2", "2\n"),
            .file("victim", "replaced\n"),                    // replaces the link, not the host file
        ])
        try applier.apply(layerAt: layer1, name: "one")
        try applier.apply(layerAt: layer2, name: "two")
        #expect(sandbox.contents("etc/absolute") == "inside\n")
        #expect(sandbox.contents(String(outside.dropFirst()) + "/pwned") == "1\n") // root/<outside>/pwned
        #expect(sandbox.contents("pwned2") == "2\n")
        #expect(sandbox.contents("victim") == "replaced\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["file"])
        #expect(try String(contentsOfFile: outside + "/file", encoding: .utf8) == "host\n")
    }

    @Test func hardLinksOutsideTheRootAreRefused() throws {
        let sandbox = try Sandbox()
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
        let layer = sandbox.layer("bad", [.hardLink("passwd", target: "../../../etc/passwd")])
        #expect(throws: ImageError.escapesRoot(layer: "bad", path: "passwd (hard link to ../../../etc/passwd)")) {
            try applier.apply(layerAt: layer, name: "bad")
        }
    }

    @Test func aHardLinkThroughASymlinkLinksInsideTheRoot() throws {
        let sandbox = try Sandbox()
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
        let layer = sandbox.layer("one", [.symlink("etc", target: "/"), .file("x", "inside\n"), .hardLink("y", target: "etc/x")])
        try applier.apply(layerAt: layer, name: "one")
        #expect(sandbox.stat("y")?.st_ino == sandbox.stat("x")?.st_ino)
    }

    @Test func garbageIsAnErrorNamingTheLayer() throws {
        let sandbox = try Sandbox()
        let path = sandbox.path + "/garbage.tar"
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }).write(to: URL(fileURLWithPath: path))
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
        #expect { try applier.apply(layerAt: path, name: "sha256:garbage") } throws: { error in
            guard case let .invalidArchive(layer, _) = error as? ImageError else { return false }
            return layer == "sha256:garbage"
        }
    }

    /// Random layers made of hostile pieces ("..", absolute and climbing
    /// symlinks, links to links): whatever happens, nothing appears outside the
    /// root and no absolute host path the entries name is touched.
    @Test func randomHostileLayersNeverWriteOutsideTheRoot() throws {
        var random = SeededGenerator(seed: 42)
        let marker = "skiff-fuzz-\(UUID().uuidString)"
        let components = ["a", "b", "..", ".", "l1", "l2", "", marker]
        let targets = ["/", "..", "../..", "/\(marker)", "a", "/tmp/\(marker)", "l1", "../../../../tmp"]
        for round in 0..<60 {
            let sandbox = try Sandbox()
            let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
            var entries: [TarWriter.Entry] = []
            for _ in 0..<12 {
                let path = (0..<Int.random(in: 1...4, using: &random)).map { _ in components.randomElement(using: &random)! }.joined(separator: "/")
                switch Int.random(in: 0..<4, using: &random) {
                case 0: entries.append(.symlink(path.isEmpty ? "l1" : path, target: targets.randomElement(using: &random)!))
                case 1: entries.append(.directory(path.isEmpty ? "a" : path))
                case 2: entries.append(.hardLink(path.isEmpty ? "b" : path, target: targets.randomElement(using: &random)!))
                default: entries.append(.file(path.isEmpty ? "b" : path, "round \(round)\n"))
                }
            }
            let layer = sandbox.layer("fuzz", entries)
            _ = try? applier.apply(layerAt: layer, name: "fuzz")
            #expect(sandbox.strays.isEmpty, "round \(round): \(entries)")
            #expect(!FileManager.default.fileExists(atPath: "/\(marker)") && !FileManager.default.fileExists(atPath: "/tmp/\(marker)"),
                    "round \(round): \(entries)")
        }
    }
}

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var hasher = SHA256()
        let million = [UInt8](repeating: 0x61, count: 1_000_000)
        for start in stride(from: 0, to: million.count, by: 999) { hasher.update(million[start..<min(start + 999, million.count)]) }
        #expect(hasher.finalize() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
