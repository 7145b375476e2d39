import Testing
@testable import JSON

@Suite struct JSONCodecTests {
    struct Layer: Codable, Equatable {
        var digest: String
        var size: Int64
        var annotations: [String: String]?
        var platform: Platform?
        struct Platform: Codable, Equatable { var architecture: String }
    }
    struct Document: Codable, Equatable {
        var schemaVersion: Int
        var layers: [Layer]
        var seconds: Double
        var small: UInt8
        var flag: Bool
        var tags: [String]?
        var phase: Phase
        enum Phase: String, Codable { case boot, restore }
    }

    func decode<T: Decodable>(_ type: T.Type, _ text: String) throws(JSONError) -> T {
        try JSONCodec.decode(type, from: Array(text.utf8))
    }

    @Test func decodesLikeTheCodersItReplaces() throws {
        let document = try decode(Document.self, #"""
            {"schemaVersion": 2, "unknown": {"ignored": [1, 2]}, "seconds": 1.5e-3, "small": 255, "flag": true,
             "tags": null, "phase": "restore",
             "layers": [{"digest": "sha256:ab", "size": 9223372036854775807, "annotations": {"k": "v"}},
                        {"digest": "sha256:cd", "size": 0, "platform": {"architecture": "amd64"}}]}
            """#)
        #expect(document == Document(schemaVersion: 2, layers: [
            Layer(digest: "sha256:ab", size: .max, annotations: ["k": "v"]),
            Layer(digest: "sha256:cd", size: 0, platform: .init(architecture: "amd64")),
        ], seconds: 0.0015, small: 255, flag: true, tags: nil, phase: .restore))
    }

    @Test func encodesWhatItDecodes() throws {
        let document = Document(schemaVersion: 2, layers: [Layer(digest: "d", size: -3, annotations: ["a": "b\"c"])],
                                seconds: 0.1, small: 7, flag: false, tags: ["x", "é"], phase: .boot)
        let text = try JSONCodec.encode(document)
        #expect(String(decoding: text, as: UTF8.self) == #"{"flag":false,"layers":[{"annotations":{"a":"b\"c"},"digest":"d","size":-3}],"phase":"boot","schemaVersion":2,"seconds":0.1,"small":7,"tags":["x","é"]}"#)
        #expect(try JSONCodec.decode(Document.self, from: text) == document)
        #expect(try JSONCodec.decode(Document.self, from: JSONCodec.encode(document, pretty: true)) == document)
        #expect(try JSONCodec.encode([1.0, 1e-07, -2.5]) == Array("[1.0,1e-07,-2.5]".utf8))
    }

    /// A well-formed document of the wrong shape: refused, naming the place.
    @Test(arguments: [
        (#"{"digest": "d"}"#, "$.size", "missing"),
        (#"{"digest": 1, "size": 1}"#, "$.digest", "expected a string, found a number"),
        (#"{"digest": "d", "size": 1.5}"#, "$.size", "expected an integer, found 1.5"),
        (#"{"digest": "d", "size": 1e3}"#, "$.size", "expected an integer"),
        (#"{"digest": "d", "size": 9223372036854775808}"#, "$.size", "does not fit in Int64"),
        (#"{"digest": "d", "size": "1"}"#, "$.size", "expected an integer, found a string"),
        (#"{"digest": "d", "size": null}"#, "$.size", "expected an integer, found null"),
        (#"{"digest": "d", "size": 1, "annotations": {"k": 2}}"#, "$.annotations.k", "expected a string"),
        (#"{"digest": "d", "size": 1, "platform": []}"#, "$.platform", "expected an object, found an array"),
        (#"[]"#, "$", "expected an object, found an array"),
    ])
    func refusesTheWrongShape(text: String, path: String, reason: String) {
        #expect {
            try decode(Layer.self, text)
        } throws: { error in
            guard let error = error as? JSONError else { return false }
            return error.location == .path(path) && error.reason.contains(reason)
        }
    }

    @Test func refusesOutOfRangeNumbers() {
        #expect(throws: JSONError.self) { try decode(UInt8.self, "256") }
        #expect(throws: JSONError.self) { try decode(UInt32.self, "-1") }
        #expect(throws: JSONError.self) { try decode(Double.self, "1e999") }
        #expect(throws: JSONError.self) { try JSONCodec.encode([Double.nan]) }
        #expect(throws: JSONError.self) { try JSONCodec.encode(["x": Double.infinity]) }
        #expect(throws: JSONError.self) { try decode(Document.Phase.self, #""pause""#) }
        #expect(throws: JSONError.self) { try decode([Int].self, #"[1, "2"]"#) }
    }

    @Test func pathsNameArrayElements() {
        #expect {
            try decode([Layer].self, #"[{"digest": "a", "size": 1}, {"digest": "b"}]"#)
        } throws: { error in
            (error as? JSONError)?.description == "$[1].size: missing"
        }
    }
}
