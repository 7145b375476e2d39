/// A JSON document as a tree: what `JSONParser` reads and `JSONWriter`
/// writes, and what the `Codable` bridge (`JSONCodec`) maps types onto.
///
/// Numbers keep their literal text, so that a 64-bit size or an ID is read
/// exactly as written (a Double would round it) and each caller's type decides
/// how the literal is read. Objects are dictionaries: the parser refuses
/// duplicate keys, so no key order or "last one wins" rule can matter.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The literal as written, already checked against JSON's number grammar.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// What the value is, for messages ("expected a string, found a number").
    public var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
