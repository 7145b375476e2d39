import Foundation
import Testing
import TestSupport
@testable import Images

@Suite struct DockerArchiveTests {
    /// A `docker save` archive: manifest.json, the config named by its digest, layer tars.
    func makeArchive(_ sandbox: Sandbox, tamper: Bool = false, layerPaths: [String] = ["aaa/layer.tar", "bbb/layer.tar"]) throws -> String {
        let first = try Data(contentsOf: URL(fileURLWithPath: sandbox.layer("one", [.file("etc/hello", "hi\n"), .file("gone", "x")])))
        let second = try Data(contentsOf: URL(fileURLWithPath: sandbox.layer("two", [.file(".wh.gone", ""), .file("etc/more", "more\n")])))
        var defaults = ImageConfiguration.RunDefaults()
        defaults.Cmd = ["/bin/sh"]
        let configuration = ImageConfiguration(architecture: "amd64", os: "linux", config: defaults,
                                               rootfs: .init(type: "layers", diff_ids: [first, second].map { "sha256:" + SHA256.hex(Array($0)) }))
        let config = Array(try JSONEncoder().encode(configuration))
        let configName = SHA256.hex(config) + ".json"
        let manifest = #"[{"Config":"\#(configName)","RepoTags":["test:latest"],"Layers":["\#(layerPaths[0])","\#(layerPaths[1])"]}]"#
        var secondBytes = Array(second)
        if tamper { secondBytes[600] ^= 1 }
        let path = sandbox.path + "/saved.tar"
        TarWriter.write([
            .directory("aaa"), .bytes("aaa/layer.tar", Array(first)),
            .directory("bbb"), .bytes("bbb/layer.tar", secondBytes),
            .bytes(configName, config), .file("manifest.json", manifest),
        ], to: path)
        return path
    }

    @Test func readsTheManifestAndConfigAndChecksLayersAgainstDiffIDs() throws {
        let sandbox = try Sandbox()
        let path = try makeArchive(sandbox)
        let source = try ImageSource.open(try ImageReference(parsing: path))
        #expect(source.reference == .dockerArchive(path: path))
        #expect(source.layerCount == 2)
        #expect(source.configuration.config?.Cmd == ["/bin/sh"])
        let config = try #require(try DockerArchive(path: path).members(["manifest.json"], limit: 1 << 20)["manifest.json"])
        #expect(!config.isEmpty)
        let scratch = sandbox.path + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let layers = try source.layers(scratch: scratch)
        #expect(layers.map(\.name) == ["aaa/layer.tar", "bbb/layer.tar"])
        let applier = LayerApplier(root: try RootDirectory(path: sandbox.root))
        for layer in layers { try applier.apply(layerAt: layer.path, name: layer.name) }
        #expect(sandbox.contents("etc/hello") == "hi\n")
        #expect(sandbox.contents("etc/more") == "more\n")
        #expect(!sandbox.exists("gone"))
        // The ID is the config's digest, as docker's image ID is.
        #expect(source.id.hasPrefix("sha256:") && source.id.count == 71)
    }

    @Test func aTamperedLayerIsRefusedByName() throws {
        let sandbox = try Sandbox()
        let path = try makeArchive(sandbox, tamper: true)
        let source = try ImageSource.open(.dockerArchive(path: path))
        let error = #expect(throws: ImageError.self) { try source.layers(scratch: sandbox.path) }
        #expect(error?.description.contains("bbb/layer.tar") == true, "\(String(describing: error))")
        #expect(error?.description.contains("corrupt") == true)
    }

    /// `docker save | skiff run /dev/stdin`-style streams are read more than once,
    /// so a FIFO (or device) is refused with its reason instead of waited on.
    @Test func aFIFOIsRefusedNotWaitedOn() throws {
        let sandbox = try Sandbox()
        let fifo = sandbox.path + "/stream.tar"
        try #require(mkfifo(fifo, 0o600) == 0)
        #expect { try DockerArchive(path: fifo).contents() } throws: { "\($0)".contains("not a regular file (a FIFO)") }
    }

    @Test func aMissingLayerOrManifestIsAnError() throws {
        let sandbox = try Sandbox()
        let path = try makeArchive(sandbox, layerPaths: ["aaa/layer.tar", "ccc/layer.tar"])
        let source = try ImageSource.open(.dockerArchive(path: path))
        #expect(throws: ImageError.self) { try source.layers(scratch: sandbox.path) }

        let notDocker = sandbox.layer("plain", [.file("hello", "hi")])
        #expect(throws: ImageError.self) { try ImageSource.open(.dockerArchive(path: notDocker)) }
        let garbage = sandbox.path + "/garbage"
        try Data("not a tar at all".utf8).write(to: URL(fileURLWithPath: garbage))
        #expect(throws: ImageError.self) { try ImageSource.open(.dockerArchive(path: garbage)) }
    }
}

@Suite struct ImageReferenceTests {
    @Test func formsThatNameALayoutOrAnArchive() throws {
        let sandbox = try Sandbox()
        let layout = sandbox.path + "/layout"
        try FileManager.default.createDirectory(atPath: layout, withIntermediateDirectories: true)
        let archive = sandbox.layer("saved", [.file("manifest.json", "[]")])
        #expect(try ImageReference(parsing: layout) == .layout(path: layout, tag: nil))
        #expect(try ImageReference(parsing: layout + ":v1") == .layout(path: layout, tag: "v1"))
        #expect(try ImageReference(parsing: "oci:" + layout) == .layout(path: layout, tag: nil))
        #expect(try ImageReference(parsing: "oci:" + layout + ":v1") == .layout(path: layout, tag: "v1"))
        #expect(try ImageReference(parsing: archive) == .dockerArchive(path: archive))
        #expect(try ImageReference(parsing: "docker-archive:" + archive) == .dockerArchive(path: archive))
        #expect(throws: ImageError.self) { try ImageReference(parsing: sandbox.path + "/nothing-here") }
        #expect(throws: ImageError.self) { try ImageReference(parsing: "oci:") }
        #expect(throws: ImageError.self) { try ImageSource.open(try ImageReference(parsing: layout)) }
    }
}
