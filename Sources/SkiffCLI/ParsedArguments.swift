/// A wrong word on the command line, or a value a command refuses: printed
/// with the command's usage, exit status 64 (EX_USAGE).
public struct UsageError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `-h` or `--help` was given: print this command's help, exit 0.
struct HelpRequest: Error {
    let spec: CommandSpec
    let path: String
}

/// `skiff --version`.
struct VersionRequest: Error {}

/// The status the process ends with, thrown from where a command knows it.
public struct ExitStatus: Error, Equatable {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
}

/// One command's words, read against its `CommandSpec` the way getopt_long
/// users expect: `--name value`, `--name=value`, `-s value`, `-svalue`,
/// clustered short flags (`-it`, `-vv`), "--" ending the options. Every word
/// is either claimed or refused by name; nothing is ignored.
struct ParsedArguments {
    let spec: CommandSpec
    /// "skiff boot", for messages.
    let path: String
    /// Every value given, by the option's place in `spec.options`; a flag
    /// holds one "" per time given. (An array, not a dictionary keyed by
    /// name, whose metadata and Hashable lookup `perf` saw at every start.)
    private var given: [[String]]
    private(set) var positionals: [String] = []
    private(set) var trailing: [String] = []

    init(_ words: [String], spec: CommandSpec, path: String) throws {
        self.spec = spec
        self.path = path
        given = Array(repeating: [], count: spec.options.count)
        var index = 0
        var optionsEnded = false
        var help = false

        func value(for option: OptionSpec, inline: Substring?) throws(UsageError) -> String {
            if let inline { return String(inline) }
            guard index < words.count else { throw UsageError("Missing value for '\(option.synopsis)'") }
            index += 1
            return words[index - 1]
        }

        if case .everything = spec.trailing {
            trailing = words
            return
        }
        while index < words.count {
            let word = words[index]
            index += 1
            if optionsEnded || word == "-" || !word.hasPrefix("-") {
                try takePositional(word)
                if positionalsComplete, case .afterPositionals = spec.trailing {
                    trailing = Array(words[index...])
                    break
                }
                continue
            }
            if word == "--" {
                if case .afterTerminator = spec.trailing {
                    trailing = Array(words[index...])
                    break
                }
                optionsEnded = true
                continue
            }
            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                let equals = body.firstIndex(of: "=")
                let name = equals.map { body[..<$0] } ?? body
                let inline = equals.map { body[body.index(after: $0)...] }
                guard let place = spec.options.firstIndex(where: { $0.long[...] == name }) else {
                    if name == "help" { help = true; continue }
                    throw UsageError("Unknown option '--\(name)'")
                }
                let option = spec.options[place]
                if option.kind == .flag {
                    guard inline == nil else { throw UsageError("'--\(name)' takes no value") }
                    given[place].append("")
                } else {
                    given[place].append(try value(for: option, inline: inline))
                }
                continue
            }
            // A cluster of short options: flags, then at most one that takes
            // the rest of the word (or the next word) as its value.
            var scalars = word.unicodeScalars.dropFirst()
            while let letter = scalars.popFirst() {
                guard let place = spec.options.firstIndex(where: { $0.short == letter }) else {
                    if letter == "h" { help = true; continue }
                    throw UsageError("Unknown option '-\(Character(letter))'")
                }
                let option = spec.options[place]
                if option.kind == .flag {
                    given[place].append("")
                    continue
                }
                let rest = word[scalars.startIndex...]
                given[place].append(try value(for: option, inline: rest.isEmpty ? nil : rest))
                break
            }
        }
        if help { throw HelpRequest(spec: spec, path: path) }
        let required = spec.positionals.filter { !$0.repeating }
        if positionals.count < required.count {
            throw UsageError("Missing expected argument '<\(required[positionals.count].name)>'")
        }
    }

    private var positionalsComplete: Bool {
        spec.positionals.last?.repeating != true && positionals.count == spec.positionals.count
    }

    private mutating func takePositional(_ word: String) throws(UsageError) {
        guard positionals.count < spec.positionals.count || spec.positionals.last?.repeating == true else {
            throw UsageError("Unexpected argument '\(word)'")
        }
        positionals.append(word)
    }

    // MARK: Typed reads. Each name must be one the spec declares: a typo is a
    // programming error. Every command's init reads all its options, and the
    // argument tests build every command.

    private func values(_ long: String) -> [String] {
        guard let place = spec.options.firstIndex(where: { $0.long == long }) else {
            preconditionFailure("\(path) declares no --\(long)")
        }
        return given[place]
    }

    func flag(_ long: String) -> Bool { !values(long).isEmpty }
    func count(_ long: String) -> Int { values(long).count }
    func string(_ long: String) -> String? { values(long).last }
    func strings(_ long: String) -> [String] { values(long) }

    func int(_ long: String, default fallback: Int) throws(UsageError) -> Int {
        guard let text = string(long) else { return fallback }
        guard let number = Int(text) else { throw UsageError("--\(long) must be a whole number, not '\(text)'") }
        return number
    }

    func double(_ long: String) throws(UsageError) -> Double? {
        guard let text = string(long) else { return nil }
        guard let number = Double(text) else { throw UsageError("--\(long) must be a number, not '\(text)'") }
        return number
    }

    /// The first positional; the parser has made sure the required ones are there.
    func positional(_ index: Int) -> String? { index < positionals.count ? positionals[index] : nil }
}
