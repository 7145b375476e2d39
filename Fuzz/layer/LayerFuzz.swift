// libFuzzer target: image layers (tar, gzip or zstd) applied by
// LayerApplier into a scratch root, as `skiff run` unpacks an image: path
// traversal, symbolic and hard links out of the root, whiteouts, devices,
// huge sizes. The check after every input: nothing exists beside the root
// but the layer file, and the sentinel outside is untouched.
import FuzzSupport
import Glibc
import Images

let sentinel = Array("outside the root".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let layer = scratch + "/layer.tar"
    let rootPath = scratch + "/root"
    writeFile(layer, UnsafeBufferPointer(start: data, count: size))
    writeFile(scratch + "/sentinel", sentinel)
    removeTree(rootPath)
    if let root = try? RootDirectory(path: rootPath) {
        // Twice: the second application meets what the first left (whiteouts, replacements).
        let applier = LayerApplier(root: root, budget: UnpackBudget(maxBytes: 8 << 20))
        _ = try? applier.apply(layerAt: layer, name: "fuzz")
        _ = try? applier.apply(layerAt: layer, name: "fuzz again")
    }
    let left = listing(scratch)
    precondition(left == ["layer.tar", "root", "sentinel"], "the layer escaped its root: \(left)")
    let fd = open(scratch + "/sentinel", O_RDONLY)
    var buffer = [UInt8](repeating: 0, count: 64)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    close(fd)
    precondition(count == sentinel.count && Array(buffer[0..<count]) == sentinel, "the sentinel outside the root changed")
    return 0
}
