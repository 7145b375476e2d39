/// `Codable` types to and from JSON text, through `JSONParser`, `JSONValue`
/// and `JSONWriter`: what Skiff's executables use in place of
/// FoundationEssentials' JSONDecoder and JSONEncoder, which brought
/// FoundationEssentials, Dispatch and the concurrency runtime into every
/// start (issue 11).
///
/// The mapping is the one those coders use by default: keys are the
/// property names, a missing key or `null` reads as nil for an optional, nil
/// optionals are left out when writing, unknown keys are ignored, dictionaries
/// keyed by strings are objects. Integers must be written as integers and fit
/// their type; no number may be infinite or NaN.
public enum JSONCodec {
    public static func decode<T: Decodable, Bytes: Collection<UInt8>>(_ type: T.Type, from bytes: Bytes) throws(JSONError) -> T {
        try decode(type, from: try JSONParser.parse(bytes))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws(JSONError) -> T {
        do { return try T(from: ValueDecoder(value: value, codingPath: [])) } catch {
            throw Self.jsonError(error)
        }
    }

    public static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws(JSONError) -> [UInt8] {
        JSONWriter.write(try encodeValue(value), pretty: pretty)
    }

    public static func encodeValue<T: Encodable>(_ value: T) throws(JSONError) -> JSONValue {
        let root = EncodedNode()
        do { try value.encode(to: ValueEncoder(node: root, codingPath: [])) } catch {
            throw Self.jsonError(error)
        }
        return root.value
    }

    /// Errors a type's own `init(from:)` or `encode(to:)` threw, as JSONError.
    private static func jsonError(_ error: any Error) -> JSONError {
        switch error {
        case let error as JSONError: return error
        case let DecodingError.dataCorrupted(context), let DecodingError.typeMismatch(_, context),
             let DecodingError.valueNotFound(_, context), let DecodingError.keyNotFound(_, context):
            return .shape(context.codingPath, context.debugDescription)
        case let EncodingError.invalidValue(_, context):
            return .shape(context.codingPath, context.debugDescription)
        default: return JSONError(.path("$"), "\(error)")
        }
    }
}

/// A key for array elements and for dictionary entries, in coding paths.
struct IndexKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) { (self.stringValue, self.intValue) = (stringValue, nil) }
    init(intValue: Int) { (self.stringValue, self.intValue) = ("\(intValue)", intValue) }
    static let superKey = IndexKey(stringValue: "super")
}
