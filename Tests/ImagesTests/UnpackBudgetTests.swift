import Foundation
import Testing
import TestSupport
@testable import Images

/// Layers that expand without bound are stopped by the image's budget, with
/// the layer and entry named; sparse entries keep their size and their holes.
@Suite struct UnpackBudgetTests {
    @Test func aLayerOfCompressedZerosIsStoppedAtTheBudget() throws {
        let sandbox = try Sandbox()
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        let bomb = sandbox.layer("bomb", [.file("small", "ok\n"), .bytes("zeros", zeros)], compression: .gzip)
        let compressed = try #require(try FileManager.default.attributesOfItem(atPath: bomb)[.size] as? Int)
        #expect(compressed < 1 << 20, "64 MiB of zeros compress to \(compressed) bytes")
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root), budget: UnpackBudget(maxBytes: 8 << 20))
        #expect { try applier.apply(layerAt: bomb, name: "sha256:bomb") } throws: { error in
            "\(error)".hasPrefix("layer sha256:bomb: stopped at 'zeros': the image expands to more than 8 MiB")
        }
        #expect(applier.budget.bytesWritten <= (8 << 20) + (1 << 20), "stopped as the budget ran out, not after the whole entry")
    }

    @Test func theDefaultIsAMultipleOfTheCompressedSizeBetweenAFloorAndACap() {
        #expect(UnpackBudget.forImage(compressedBytes: 134_000).maxBytes == UnpackBudget.floor)
        #expect(UnpackBudget.forImage(compressedBytes: 1 << 30).maxBytes == 32 << 30)
        #expect(UnpackBudget.forImage(compressedBytes: 10 << 30).maxBytes == UnpackBudget.hardCap)
        #expect(UnpackBudget.forImage(compressedBytes: .max).maxBytes == UnpackBudget.hardCap)
        #expect(UnpackBudget.forImage(compressedBytes: 1, override: 100 << 30).maxBytes == 100 << 30)
        #expect(UnpackBudget.parseSize("10G") == 10 << 30 && UnpackBudget.parseSize("512m") == 512 << 20)
        #expect(UnpackBudget.parseSize("4096") == 4096)
        for bad in ["", "G", "-1G", "0", "1.5G", "99999999999T", "10X"] { #expect(UnpackBudget.parseSize(bad) == nil, "\(bad)") }
    }

    @Test func tooManyEntriesOrTooDeepAPathIsRefused() throws {
        let sandbox = try Sandbox()
        let many = sandbox.layer("many", (0..<20).map { TarWriter.Entry.file("f\($0)", "") })
        let few = LayerApplier(root: try RootDirectory(path: sandbox.root), budget: UnpackBudget(maxBytes: 1 << 20, maxEntries: 10))
        #expect { try few.apply(layerAt: many, name: "many") } throws: { "\($0)".contains("more than 10 entries in the image") }
        let deep = sandbox.layer("deep", [.file(Array(repeating: "d", count: 40).joined(separator: "/") + "/leaf", "x")])
        let shallow = LayerApplier(root: try RootDirectory(path: sandbox.root), budget: UnpackBudget(maxBytes: 1 << 20, maxDepth: 32))
        #expect { try shallow.apply(layerAt: deep, name: "deep") } throws: { "\($0)".contains("41 path components; at most 32") }
    }

    /// A GNU sparse entry (GNU tar -S) that is almost all hole unpacks with its
    /// full size and without allocating the hole.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") || FileManager.default.isExecutableFile(atPath: "/bin/tar")))
    func sparseEntriesKeepTheirSizeAndTheirHoles() throws {
        let sandbox = try Sandbox()
        let source = sandbox.path + "/source"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let handle = try #require(FileHandle(forWritingAtPath: source + "/holes") ?? {
            FileManager.default.createFile(atPath: source + "/holes", contents: nil)
            return FileHandle(forWritingAtPath: source + "/holes")
        }())
        try handle.seek(toOffset: 256 << 20)
        handle.write(Data("end\n".utf8))
        try handle.close()
        FileManager.default.createFile(atPath: source + "/empty-sparse", contents: nil)
        truncate(source + "/empty-sparse", 64 << 20) // all hole
        let layer = sandbox.path + "/sparse.tar"
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/sh")
        tar.arguments = ["-c", "tar -C '\(source)' --sparse --format=gnu -cf '\(layer)' holes empty-sparse"]
        try tar.run()
        tar.waitUntilExit()
        try #require(tar.terminationStatus == 0)

        // The disk is sized by what files claim, so one bigger than the whole budget is refused...
        let small = LayerApplier(root: try RootDirectory(path: sandbox.root), budget: UnpackBudget(maxBytes: 1 << 20))
        #expect { try small.apply(layerAt: layer, name: "sparse") } throws: { "\($0)".contains("a 268435460-byte file") }
        // ...but its holes do not count as data written.
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root), budget: UnpackBudget(maxBytes: 512 << 20))
        try applier.apply(layerAt: layer, name: "sparse")
        let holes = try #require(sandbox.stat("holes")), empty = try #require(sandbox.stat("empty-sparse"))
        #expect(holes.st_size == (256 << 20) + 4)
        #expect(holes.st_blocks * 512 < 1 << 20, "the hole stays a hole: \(holes.st_blocks) blocks")
        #expect(empty.st_size == 64 << 20, "an entry that is all hole keeps its size (it used to unpack as 0 bytes)")
        #expect(empty.st_blocks == 0)
        #expect(applier.budget.bytesWritten < 1 << 20, "holes cost nothing against the budget")
    }
}
