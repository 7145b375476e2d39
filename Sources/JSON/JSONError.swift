/// Why a document was refused or a value could not be mapped, with where:
/// a byte offset for malformed text, a path like `$.manifests[0].size` for a
/// well-formed document of the wrong shape.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Location: Equatable, Sendable {
        /// Byte offset into the text.
        case offset(Int)
        /// Where in the document, `$` being the top.
        case path(String)
    }
    public var location: Location
    public var reason: String

    public init(_ location: Location, _ reason: String) {
        self.location = location
        self.reason = reason
    }

    public var description: String {
        switch location {
        case let .offset(offset): "byte \(offset): \(reason)"
        case let .path(path): "\(path): \(reason)"
        }
    }

    /// `$`, `$.config`, `$.layers[2].digest`, from a Codable coding path.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = "$"
        for key in codingPath {
            if let index = key.intValue { text += "[\(index)]" } else { text += "." + key.stringValue }
        }
        return text
    }

    static func shape(_ codingPath: [any CodingKey], _ reason: String) -> JSONError {
        JSONError(.path(path(codingPath)), reason)
    }
}
