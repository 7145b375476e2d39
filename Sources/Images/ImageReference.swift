import Glibc

/// Where an image comes from, as `skiff run` names it:
/// - `oci:DIR[:TAG]`, or a plain `DIR` / `DIR:TAG`: an OCI image layout
///   (umoci, skopeo and buildah write these);
/// - `docker-archive:FILE`, or a plain `FILE`: what `docker save` writes.
public enum ImageReference: Sendable, Equatable, CustomStringConvertible {
    case layout(path: String, tag: String?)
    case dockerArchive(path: String)

    public init(parsing text: String) throws(ImageError) {
        if text.hasPrefix("oci:") {
            let rest = String(text.dropFirst(4))
            guard !rest.isEmpty else { throw .unreadable(path: text, reason: "oci: needs a directory") }
            if Self.isDirectory(rest) { self = .layout(path: rest, tag: nil); return }
            let (path, tag) = Self.splitTag(rest)
            self = .layout(path: path, tag: tag)
            return
        }
        if text.hasPrefix("docker-archive:") {
            let path = String(text.dropFirst("docker-archive:".count))
            guard !path.isEmpty else { throw .unreadable(path: text, reason: "docker-archive: needs a file") }
            self = .dockerArchive(path: path)
            return
        }
        if Self.isDirectory(text) { self = .layout(path: text, tag: nil); return }
        if Self.isFile(text) { self = .dockerArchive(path: text); return }
        let (path, tag) = Self.splitTag(text)
        if let tag, Self.isDirectory(path) { self = .layout(path: path, tag: tag); return }
        throw .unreadable(path: text, reason: "no such image: give an OCI layout directory (oci:DIR[:TAG]) or a docker save archive (docker-archive:FILE)")
    }

    public var path: String {
        switch self {
        case let .layout(path, _), let .dockerArchive(path): return path
        }
    }

    public var description: String {
        switch self {
        case let .layout(path, tag): return "oci:\(path)" + (tag.map { ":\($0)" } ?? "")
        case let .dockerArchive(path): return "docker-archive:\(path)"
        }
    }

    /// `DIR:TAG` → (DIR, TAG); a colon inside the last path component only.
    static func splitTag(_ text: String) -> (String, String?) {
        guard let colon = text.lastIndex(of: ":"), !text[colon...].contains("/") else { return (text, nil) }
        let tag = String(text[text.index(after: colon)...])
        return (String(text[..<colon]), tag.isEmpty ? nil : tag)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    static func isFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }
}
