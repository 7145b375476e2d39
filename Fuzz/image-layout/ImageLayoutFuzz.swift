// libFuzzer target: OCI image layouts as `skiff run oci:DIR` reads them. The
// input is three JSON documents separated by NUL bytes: the config, the
// manifest and the index. The harness stores the first two as blobs under
// their real digests and replaces the words CONFIG_DIGEST, CONFIG_SIZE,
// MANIFEST_DIGEST and MANIFEST_SIZE in the others with the right values,
// so the fuzzer gets past the digest checks into every reader.
import FuzzSupport
import Glibc
import Images

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let parts = input.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false).map { Array($0) }
    guard parts.count == 3 else { return 0 }
    let layout = scratch + "/layout"
    removeTree(layout)
    mkdir(layout, 0o755)
    mkdir(layout + "/blobs", 0o755)
    mkdir(layout + "/blobs/sha256", 0o755)
    func store(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        let hex = hasher.finalize()
        writeFile(layout + "/blobs/sha256/" + hex, bytes)
        return "sha256:" + hex
    }
    func substitute(_ bytes: [UInt8], _ pairs: [(String, String)]) -> [UInt8] {
        var text = String(decoding: bytes, as: UTF8.self)
        for (word, value) in pairs { text = text.replacing(word, with: value) }
        return Array(text.utf8)
    }
    let configDigest = store(parts[0])
    let manifest = substitute(parts[1], [("CONFIG_DIGEST", configDigest), ("CONFIG_SIZE", String(parts[0].count))])
    let manifestDigest = store(manifest)
    let index = substitute(parts[2], [("MANIFEST_DIGEST", manifestDigest), ("MANIFEST_SIZE", String(manifest.count))])
    writeFile(layout + "/index.json", index)
    writeFile(layout + "/oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
    guard let opened = try? ImageLayout(path: layout) else { return 0 }
    for tag in [nil, "latest"] as [String?] {
        guard let (_, image) = try? opened.manifest(tag: tag) else { continue }
        _ = try? opened.configuration(of: image)
        for layer in image.layers { _ = try? opened.verifiedBlobPath(layer) }
    }
    return 0
}
