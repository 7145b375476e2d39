// libFuzzer target: JSON text as Skiff reads every document (image indexes,
// manifests, configs, OCI bundles, its own state files). Any input must be
// refused with a JSONError or parsed; what is parsed must write back to text
// that parses to the same value, and decoding it as an image manifest must
// give a value or a JSONError, never a trap.
import JSON
import Images

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    for pretty in [false, true] {
        let written = JSONWriter.write(value, pretty: pretty)
        guard let again = try? JSONParser.parse(written), again == value else {
            fatalError("written text does not parse back to the same value: \(String(decoding: written, as: UTF8.self))")
        }
    }
    _ = try? JSONCodec.decode(ImageManifest.self, from: value)
    _ = try? JSONCodec.decode(ImageConfiguration.self, from: value)
    return 0
}
