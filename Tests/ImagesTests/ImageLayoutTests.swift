import Foundation
import Testing
import TestSupport
@testable import Images

@Suite struct ImageLayoutTests {
    func makeImage(_ sandbox: Sandbox) throws -> (LayoutBuilder, Descriptor) {
        let layout = try LayoutBuilder(sandbox.path + "/layout")
        let layerFile = sandbox.layer("layer", [.file("hello", "hi\n")], compression: .gzip)
        let layer = try layout.blob(Array(try Data(contentsOf: URL(fileURLWithPath: layerFile))),
                                    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip")
        var defaults = ImageConfiguration.RunDefaults()
        defaults.Entrypoint = ["/bin/echo"]
        defaults.Cmd = ["hello"]
        defaults.Env = ["PATH=/bin", "FOO=bar"]
        defaults.WorkingDir = "/srv"
        defaults.User = "app"
        try layout.image(layers: [layer], defaults: defaults, tag: "latest")
        return (layout, layer)
    }

    @Test func readsIndexManifestConfigAndVerifiedLayers() throws {
        let sandbox = try Sandbox()
        let (builder, layer) = try makeImage(sandbox)
        let layout = try ImageLayout(path: builder.path)
        let (_, manifest) = try layout.manifest(tag: "latest")
        #expect(manifest.layers == [layer])
        let configuration = try layout.configuration(of: manifest)
        #expect(configuration.config?.Entrypoint == ["/bin/echo"] && configuration.config?.Cmd == ["hello"])
        #expect(configuration.config?.Env == ["PATH=/bin", "FOO=bar"] && configuration.config?.WorkingDir == "/srv")
        #expect(try layout.manifest(tag: nil).manifest.layers == [layer])
        let blob = try layout.verifiedBlobPath(layer)
        try LayerApplier(root: try RootDirectory(path: sandbox.root)).apply(layerAt: blob, name: layer.digest)
        #expect(sandbox.contents("hello") == "hi\n")
    }

    @Test func aTamperedOrTruncatedBlobIsRefusedByName() throws {
        let sandbox = try Sandbox()
        let (builder, layer) = try makeImage(sandbox)
        let layout = try ImageLayout(path: builder.path)
        let file = try layout.blobPath(layer)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: file))
        #expect { try layout.verifiedBlobPath(layer) } throws: { error in
            guard case let .digestMismatch(blob, _) = error as? ImageError else { return false }
            return blob == layer.digest
        }
        try bytes.dropLast().write(to: URL(fileURLWithPath: file))
        #expect(throws: ImageError.sizeMismatch(blob: layer.digest, expected: layer.size, actual: layer.size - 1)) {
            try layout.verifiedBlobPath(layer)
        }
    }

    @Test func unknownTagsListTheTagsThereAre() throws {
        let sandbox = try Sandbox()
        let (builder, _) = try makeImage(sandbox)
        #expect(throws: ImageError.noSuchTag("v2", available: ["latest"])) { try ImageLayout(path: builder.path).manifest(tag: "v2") }
    }

    @Test func aDirectoryThatIsNotALayoutSaysSo() {
        #expect { try ImageLayout(path: "/tmp") } throws: { error in
            "\(error)" == "/tmp: not an OCI image layout (no oci-layout file)"
        }
    }

    @Test func digestsMustBeSHA256Hex() throws {
        let sandbox = try Sandbox()
        let (builder, _) = try makeImage(sandbox)
        let layout = try ImageLayout(path: builder.path)
        for digest in ["sha512:abc", "sha256:../../../etc/passwd", "sha256:" + String(repeating: "A", count: 64)] {
            #expect(throws: ImageError.self) { try layout.blobPath(Descriptor(mediaType: "x", digest: digest, size: 1)) }
        }
    }
}
