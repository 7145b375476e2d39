import Glibc

/// An image opened from its reference: its identity, its config, and its
/// layers on demand (reading and checking layers is the slow part, and a
/// cached root disk makes it unnecessary).
public struct ImageSource: Sendable {
    public let reference: ImageReference
    /// Content address of the image: the manifest digest for an OCI layout,
    /// docker's image ID (the config digest) for a docker archive.
    public let id: String
    public let configuration: ImageConfiguration
    private let origin: Origin

    private enum Origin: Sendable {
        case layout(ImageLayout, ImageManifest)
        case docker(DockerArchive, DockerArchive.Contents)
    }

    public static func open(_ reference: ImageReference) throws(ImageError) -> ImageSource {
        switch reference {
        case let .layout(path, tag):
            let layout = try ImageLayout(path: path)
            let (descriptor, manifest) = try layout.manifest(tag: tag)
            for layer in manifest.layers where !MediaType.layers.contains(layer.mediaType) {
                throw .unsupportedMediaType(layer.mediaType)
            }
            let configuration = try layout.configuration(of: manifest)
            try checkPlatform(configuration, reference)
            return ImageSource(reference: reference, id: descriptor.digest, configuration: configuration,
                               origin: .layout(layout, manifest))
        case let .dockerArchive(path):
            let archive = DockerArchive(path: path)
            let contents = try archive.contents()
            try checkPlatform(contents.configuration, reference)
            return ImageSource(reference: reference, id: contents.imageID, configuration: contents.configuration,
                               origin: .docker(archive, contents))
        }
    }

    /// The layers in order, each checked against its digest. A docker
    /// archive's layers are copied into `scratch` first.
    public func layers(scratch: String) throws(ImageError) -> [(path: String, name: String)] {
        switch origin {
        case let .layout(layout, manifest):
            return try manifest.layers.map { descriptor throws(ImageError) in
                (try layout.verifiedBlobPath(descriptor), descriptor.digest)
            }
        case let .docker(archive, contents):
            let paths = try archive.extractLayers(contents, into: scratch)
            return zip(paths, contents.layerMembers).map { ($0, $1) }
        }
    }

    /// The layers' stored (compressed) size, as a registry or `docker images` counts it.
    public var layerBytes: Int64 {
        switch origin {
        case let .layout(_, manifest): return manifest.layers.reduce(0) { $0 + $1.size }
        case let .docker(archive, _):
            var info = stat()
            return stat(archive.path, &info) == 0 ? Int64(info.st_size) : 0
        }
    }

    public var layerCount: Int {
        switch origin {
        case let .layout(_, manifest): return manifest.layers.count
        case let .docker(_, contents): return contents.layerMembers.count
        }
    }

    /// Skiff boots x86_64 Linux guests; an image for anything else cannot run.
    private static func checkPlatform(_ configuration: ImageConfiguration, _ reference: ImageReference) throws(ImageError) {
        if let os = configuration.os, os != "linux" { throw .invalidLayout("\(reference) is an image for \(os), not linux") }
        if let architecture = configuration.architecture, !["amd64", "x86_64", "386"].contains(architecture) {
            throw .invalidLayout("\(reference) is an image for \(architecture); Skiff runs amd64 images")
        }
    }
}
