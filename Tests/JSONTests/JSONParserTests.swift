import TestSupport
import Testing
@testable import JSON

@Suite struct JSONParserTests {
    func parse(_ text: String) throws(JSONError) -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test func readsEveryKindOfValue() throws {
        let value = try parse(#" { "a" : [1, -2.5e3, true, false, null, "x"], "b": {}, "c": [] } "#)
        #expect(value == .object([
            "a": .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null, .string("x")]),
            "b": .object([:]), "c": .array([]),
        ]))
        #expect(try parse("0") == .number("0"))
        #expect(try parse("-0.0E+1") == .number("-0.0E+1"))
        #expect(try parse("\"\"") == .string(""))
    }

    @Test func decodesEscapes() throws {
        #expect(try parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{c}\n\r\t"))
        #expect(try parse(#""\u00e9\u20AC""#) == .string("é€"))
        #expect(try parse(#""\ud83d\ude00 ok""#) == .string("😀 ok"))
        #expect(try parse("\"raw é😀\"") == .string("raw é😀"))
    }

    /// Each malformed document is refused, and the message says where.
    @Test(arguments: [
        ("", 0, "unexpected end"), ("   ", 3, "unexpected end"), ("{", 1, "unexpected end"),
        ("[1,]", 3, "unexpected character ']'"), ("{\"a\":1,}", 7, "expected a key"),
        ("01", 0, "may not start with 0"), ("1.", 2, "after '.'"), ("1e", 2, "exponent"), ("-", 1, "expected a digit"),
        ("+1", 0, "unexpected character '+'"), ("NaN", 0, "unexpected character 'N'"), ("tru", 0, "unexpected character 't'"),
        ("nul", 0, "'n'"), ("1 2", 2, "after the document"), ("{\"a\" 1}", 5, "expected ':'"), ("[1 2]", 3, "expected ','"),
        ("'a'", 0, "unexpected character"), ("// c\n1", 0, "unexpected character '/'"), ("\"abc", 0, "unterminated string"),
        ("\"a\tb\"", 2, "control character"), ("\"\\x\"", 1, "unknown escape"), ("\"\\u12\"", 5, "four hex digits"),
        ("\"\\ud800\"", 1, "unpaired surrogate"), ("\"\\udc00\"", 1, "unpaired surrogate"), ("\"\\ud800\\u0041\"", 1, "unpaired surrogate"),
        ("\"\\u0000\"", 1, "U+0000"), ("{\"a\":1,\"a\":2}", 7, "appears twice"),
    ])
    func refusesMalformedText(text: String, offset: Int, reason: String) {
        #expect {
            try parse(text)
        } throws: { error in
            guard let error = error as? JSONError else { return false }
            return error.location == .offset(offset) && error.reason.contains(reason)
        }
    }

    @Test func refusesBytesThatAreNotUTF8() {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0x00, 0x22], [0xEF, 0xBB, 0xBF, 0x31]] {
            #expect(throws: JSONError.self) { try JSONParser.parse(bytes) }
        }
    }

    @Test func boundsNesting() throws {
        let deep = JSONParser.maximumDepth
        _ = try parse(String(repeating: "[", count: deep) + String(repeating: "]", count: deep))
        #expect(throws: JSONError.self) {
            try parse(String(repeating: "[", count: deep + 1) + String(repeating: "]", count: deep + 1))
        }
        // Far deeper than any stack would survive if the depth were unchecked.
        #expect(throws: JSONError.self) { try parse(String(repeating: "{\"a\":", count: 100_000)) }
    }

    /// Whatever the parser accepts, the writer writes back to an equal value.
    @Test func writesWhatItReadsBack() throws {
        var generator = SeededGenerator(seed: 11)
        for _ in 0..<300 {
            let value = generator.value(depth: 0)
            for pretty in [false, true] {
                #expect(try JSONParser.parse(JSONWriter.write(value, pretty: pretty)) == value)
            }
        }
    }

    @Test func writesSortedKeysAndEscapes() {
        let value = JSONValue.object(["b": .array([.number("1"), .null]), "a": .string("q\"\\\n\u{1}/é")])
        #expect(String(decoding: JSONWriter.write(value), as: UTF8.self) == #"{"a":"q\"\\\n\u0001/é","b":[1,null]}"#)
        #expect(String(decoding: JSONWriter.write(value, pretty: true), as: UTF8.self) == """
            {
              "a": "q\\"\\\\\\n\\u0001/é",
              "b": [
                1,
                null
              ]
            }

            """)
        #expect(JSONWriter.write(.object([:]), pretty: true) == Array("{}\n".utf8))
    }
}

/// Random documents, reproducible from a seed.
extension SeededGenerator {
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func string() -> String {
        let alphabet: [Unicode.Scalar] = ["a", "Z", "\"", "\\", "/", "\n", "\u{1}", "\u{1F}", "é", "€", "😀", " ", "\u{2028}"]
        return String(String.UnicodeScalarView((0..<below(6)).map { _ in alphabet[below(alphabet.count)] }))
    }

    mutating func value(depth: Int) -> JSONValue {
        switch below(depth > 3 ? 5 : 7) {
        case 0: return .null
        case 1: return .bool(below(2) == 0)
        case 2: return .number(["0", "-1", "12.5", "1e-07", "18446744073709551615", "-0.5E+3"][below(6)])
        case 3, 4: return .string(string())
        case 5: return .array((0..<below(4)).map { _ in value(depth: depth + 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<below(4) { members[string()] = value(depth: depth + 1) }
            return .object(members)
        }
    }
}
