/// `Encoder` building a `JSONValue`. Codable's containers are handed out and
/// written to independently (a nested container outlives the call that made
/// it), so they write into shared nodes, read out as a value at the end.
final class EncodedNode {
    enum Content {
        case unset
        case value(JSONValue)
        case object([String: EncodedNode])
        case array([EncodedNode])
    }
    var content = Content.unset

    var value: JSONValue {
        switch content {
        case .unset: .object([:])  // a type that encoded nothing, as JSONEncoder writes it
        case let .value(value): value
        case let .object(members): .object(members.mapValues(\.value))
        case let .array(elements): .array(elements.map(\.value))
        }
    }

    /// The members of the object this node is (made one if still unset).
    /// Codable asks for the same container kind more than once (a class and its super).
    func objectMembers(at path: [any CodingKey]) throws -> [String: EncodedNode] {
        switch content {
        case .unset: content = .object([:]); return [:]
        case let .object(members): return members
        default: throw JSONError.shape(path, "encoded both as an object and as something else")
        }
    }

    func arrayElements(at path: [any CodingKey]) throws -> [EncodedNode] {
        switch content {
        case .unset: content = .array([]); return []
        case let .array(elements): return elements
        default: throw JSONError.shape(path, "encoded both as an array and as something else")
        }
    }
}

struct ValueEncoder: Encoder {
    let node: EncodedNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .unset = node.content { node.content = .object([:]) }
        return KeyedEncodingContainer(KeyedNodes(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .unset = node.content { node.content = .array([]) }
        return ArrayNodes(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleNode(node: node, codingPath: codingPath) }
}

/// Writing one Swift value: the conversions every container shares.
enum ValueWriting {
    static func write<T: Encodable>(_ value: T, into node: EncodedNode, at path: [any CodingKey]) throws {
        switch value {
        case let string as String: node.content = .value(.string(string))
        case let flag as Bool: node.content = .value(.bool(flag))
        case let number as Double: node.content = .value(try literal(number, path))
        case let number as Float: node.content = .value(try literal(Double(number), path))
        case let number as Int: node.content = .value(.number(String(number)))
        case let number as Int8: node.content = .value(.number(String(number)))
        case let number as Int16: node.content = .value(.number(String(number)))
        case let number as Int32: node.content = .value(.number(String(number)))
        case let number as Int64: node.content = .value(.number(String(number)))
        case let number as UInt: node.content = .value(.number(String(number)))
        case let number as UInt8: node.content = .value(.number(String(number)))
        case let number as UInt16: node.content = .value(.number(String(number)))
        case let number as UInt32: node.content = .value(.number(String(number)))
        case let number as UInt64: node.content = .value(.number(String(number)))
        default: try value.encode(to: ValueEncoder(node: node, codingPath: path))
        }
    }

    /// Swift's shortest round-tripping form ("0.1", "1e-07", "3.0") is JSON's grammar too.
    static func literal(_ number: Double, _ path: [any CodingKey]) throws -> JSONValue {
        guard number.isFinite else { throw JSONError.shape(path, "\(number) cannot be written as JSON") }
        return .number(number.description)
    }
}

struct KeyedNodes<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodedNode
    let codingPath: [any CodingKey]

    private func child(_ key: Key) throws -> EncodedNode {
        var members = try node.objectMembers(at: codingPath)
        let child = EncodedNode()
        members[key.stringValue] = child
        node.content = .object(members)
        return child
    }

    mutating func encodeNil(forKey key: Key) throws { try child(key).content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try ValueWriting.write(value, into: try child(key), at: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = (try? child(key)) ?? EncodedNode()
        return ValueEncoder(node: child, codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = (try? child(key)) ?? EncodedNode()
        return ValueEncoder(node: child, codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = (try? child(Key(stringValue: "super")!)) ?? EncodedNode()
        return ValueEncoder(node: child, codingPath: codingPath + [IndexKey.superKey])
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        ValueEncoder(node: (try? child(key)) ?? EncodedNode(), codingPath: codingPath + [key])
    }
}

struct ArrayNodes: UnkeyedEncodingContainer {
    let node: EncodedNode
    let codingPath: [any CodingKey]

    var count: Int { (try? node.arrayElements(at: codingPath).count) ?? 0 }

    private func append() -> (EncodedNode, [any CodingKey]) {
        var elements = (try? node.arrayElements(at: codingPath)) ?? []
        let child = EncodedNode()
        elements.append(child)
        node.content = .array(elements)
        return (child, codingPath + [IndexKey(intValue: elements.count - 1)])
    }

    mutating func encodeNil() throws { append().0.content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let (child, path) = append()
        try ValueWriting.write(value, into: child, at: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let (child, path) = append()
        return ValueEncoder(node: child, codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let (child, path) = append()
        return ValueEncoder(node: child, codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let (child, path) = append()
        return ValueEncoder(node: child, codingPath: path)
    }
}

struct SingleNode: SingleValueEncodingContainer {
    let node: EncodedNode
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws { try ValueWriting.write(value, into: node, at: codingPath) }
}
