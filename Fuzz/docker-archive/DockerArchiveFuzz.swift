// libFuzzer target: `docker save` archives as `skiff run docker-archive:FILE`
// reads them: the tar (through libarchive, any compression it takes), its
// manifest.json and config, then the layers extracted into a scratch
// directory. Nothing may land outside that directory.
import FuzzSupport
import Glibc
import Images

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let archive = scratch + "/image.tar"
    let layers = scratch + "/layers"
    writeFile(archive, UnsafeBufferPointer(start: data, count: size))
    removeTree(layers)
    mkdir(layers, 0o755)
    let reader = DockerArchive(path: archive)
    if let contents = try? reader.contents() {
        _ = try? reader.extractLayers(contents, into: layers)
    }
    let left = listing(scratch)
    precondition(left == ["image.tar", "layers"], "the archive reader wrote outside its directory: \(left)")
    return 0
}
