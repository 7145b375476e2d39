/// RFC 8259 JSON, read strictly: the documents Skiff reads (image indexes,
/// manifests and configs, OCI bundles, its own state files) may come from
/// anyone, so anything a lenient reader would guess at is refused with the
/// byte offset where it went wrong:
/// - only JSON's grammar: no comments, trailing commas, single quotes,
///   `NaN`, leading zeros, byte-order mark or text after the value;
/// - strings must be valid UTF-8 with no raw control characters, and
///   `\u` escapes may not leave a surrogate unpaired;
/// - no string may hold U+0000: every string Skiff reads ends up as a path,
///   an argument or an environment entry, which C would cut short there, so
///   the text checked would not be the text used;
/// - an object may not name a key twice (readers disagree on which one wins,
///   which is how two tools come to see two different documents);
/// - nesting is bounded (`maximumDepth`), so a hostile document cannot
///   exhaust the stack.
public struct JSONParser {
    /// Arrays and objects nested deeper than this are refused.
    public static let maximumDepth = 128

    /// Parses one document: a single value, with only whitespace around it.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(JSONError) -> JSONValue {
        if let result = bytes.withContiguousStorageIfAvailable({ buffer in Result { () throws(JSONError) in try parse(buffer) } }) {
            return try result.get()
        }
        return try Array(bytes).withUnsafeBufferPointer { buffer throws(JSONError) in try parse(buffer) }
    }

    static func parse(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONError) -> JSONValue {
        var parser = JSONParser(text: buffer)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == buffer.count else { throw parser.failure("unexpected text after the document") }
        return value
    }

    private let text: UnsafeBufferPointer<UInt8>
    private var position = 0

    private init(text: UnsafeBufferPointer<UInt8>) { self.text = text }

    private var current: UInt8? { position < text.count ? text[position] : nil }

    private func failure(_ reason: String, at offset: Int? = nil) -> JSONError {
        JSONError(.offset(offset ?? position), reason)
    }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    private mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard let byte = current else { throw failure("unexpected end of the document") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw failure("unexpected character \(describe(byte))")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let start = position
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard text.count - position >= expected.count,
              UnsafeBufferPointer(rebasing: text[position..<position + expected.count]).elementsEqual(expected) else {
            throw failure("unexpected character \(describe(text[start]))", at: start)
        }
        position += expected.count
    }

    private mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth) levels") }
        position += 1  // {
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            let keyOffset = position
            guard current == UInt8(ascii: "\"") else { throw failure(current == nil ? "unexpected end of the document" : "expected a key in quotes") }
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw failure("expected ':' after a key") }
            position += 1
            skipWhitespace()
            let member = try value(depth: depth)
            guard members.updateValue(member, forKey: key) == nil else {
                throw failure("the key \"\(key)\" appears twice in one object", at: keyOffset)
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(members)
            case nil: throw failure("unexpected end of the document")
            default: throw failure("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth) levels") }
        position += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { position += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(elements)
            case nil: throw failure("unexpected end of the document")
            default: throw failure("expected ',' or ']' in an array")
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as its text.
    private mutating func number() throws(JSONError) -> String {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        guard let first = current, isDigit(first) else { throw failure("expected a digit") }
        position += 1
        if first == UInt8(ascii: "0"), let next = current, isDigit(next) { throw failure("a number may not start with 0", at: start) }
        skipDigits()
        if current == UInt8(ascii: ".") {
            position += 1
            guard let next = current, isDigit(next) else { throw failure("expected a digit after '.'") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard let next = current, isDigit(next) else { throw failure("expected a digit in the exponent") }
            skipDigits()
        }
        return String(decoding: UnsafeBufferPointer(rebasing: text[start..<position]), as: UTF8.self)
    }

    private mutating func skipDigits() {
        while let byte = current, isDigit(byte) { position += 1 }
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// A string's contents; `position` is at its opening quote.
    private mutating func string() throws(JSONError) -> String {
        let open = position
        position += 1
        var start = position
        var unescaped: [UInt8] = []
        var escaped = false
        while true {
            guard let byte = current else { throw failure("unterminated string", at: open) }
            switch byte {
            case UInt8(ascii: "\""):
                let tail = UnsafeBufferPointer(rebasing: text[start..<position])
                position += 1
                if !escaped { return try validated(tail, open) }
                unescaped.append(contentsOf: tail)
                return try unescaped.withUnsafeBufferPointer { bytes throws(JSONError) in try validated(bytes, open) }
            case UInt8(ascii: "\\"):
                escaped = true
                unescaped.append(contentsOf: UnsafeBufferPointer(rebasing: text[start..<position]))
                try escape(into: &unescaped)
                start = position
            case 0:
                throw failure("a string may not contain U+0000")
            case ..<0x20:
                throw failure("control character \(describe(byte)) in a string (it must be escaped)")
            default:
                position += 1
            }
        }
    }

    private func validated(_ bytes: UnsafeBufferPointer<UInt8>, _ open: Int) throws(JSONError) -> String {
        guard let string = String(validating: bytes, as: UTF8.self) else { throw failure("a string that is not valid UTF-8", at: open) }
        return string
    }

    /// One escape sequence; `position` is at its backslash.
    private mutating func escape(into output: inout [UInt8]) throws(JSONError) {
        let start = position
        position += 1
        guard let byte = current else { throw failure("unterminated string") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(byte)
        case UInt8(ascii: "b"): output.append(0x08)
        case UInt8(ascii: "f"): output.append(0x0C)
        case UInt8(ascii: "n"): output.append(0x0A)
        case UInt8(ascii: "r"): output.append(0x0D)
        case UInt8(ascii: "t"): output.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try hexQuad())
            if (0xD800...0xDBFF).contains(scalar) {
                guard current == UInt8(ascii: "\\"), position + 1 < text.count, text[position + 1] == UInt8(ascii: "u") else {
                    throw failure("an unpaired surrogate escape", at: start)
                }
                position += 2
                let low = UInt32(try hexQuad())
                guard (0xDC00...0xDFFF).contains(low) else { throw failure("an unpaired surrogate escape", at: start) }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw failure("an unpaired surrogate escape", at: start)
            }
            guard scalar != 0 else { throw failure("a string may not contain U+0000", at: start) }
            output.append(contentsOf: Unicode.UTF8.encode(Unicode.Scalar(scalar)!)!)
        default:
            throw failure("unknown escape \\\(describe(byte))", at: start)
        }
    }

    private mutating func hexQuad() throws(JSONError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw failure("unterminated string") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("expected four hex digits after \\u")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }

    private func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : "0x" + String(byte, radix: 16)
    }
}
