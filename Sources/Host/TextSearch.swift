extension StringProtocol {
    /// Whether `part` occurs in the text, compared byte by byte (UTF-8).
    /// The standard library's `contains(_: String)` lives in _StringProcessing,
    /// and calling it links that module and its regex parser into the
    /// executable: 11 more pages for the loader to relocate at every start.
    public func containsText(_ part: some StringProtocol) -> Bool {
        let text = Array(utf8), part = Array(part.utf8)
        guard part.count <= text.count else { return false }
        guard !part.isEmpty else { return true }
        return (0...(text.count - part.count)).contains { start in text[start..<start + part.count].elementsEqual(part) }
    }
}
