/// What one `skiff` command accepts, declared once: the parser, the usage
/// line and `--help` all read it.
///
/// Why not swift-argument-parser, which `skiff-bench` still uses: it finds a
/// command's options by instantiating the command and reflecting over it
/// (`Mirror`), and each property wrapper's dynamic casts scan the executable's
/// protocol conformances. `perf` put that at 2.2–2.6 ms of `skiff boot`'s
/// start on the nested-PVM host, most of the 3 ms the whole start may take
/// (issue 11), and about 1 MiB of resident memory. A table read by a loop
/// costs microseconds. Firecracker made the same choice for the same reason.
struct CommandSpec: Sendable {
    /// The word that selects the command ("boot"); empty for the root.
    let name: String
    let abstract: String
    let discussion: String
    let options: [OptionSpec]
    let positionals: [PositionalSpec]
    let trailing: TrailingSpec
    /// Commands below this one (`skiff image ls`), by name, in help order.
    let subcommands: [(name: String, abstract: String)]

    init(name: String, abstract: String, discussion: String = "", options: [OptionSpec] = [],
         positionals: [PositionalSpec] = [], trailing: TrailingSpec = .none,
         subcommands: [(name: String, abstract: String)] = []) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.options = options
        self.positionals = positionals
        self.trailing = trailing
        self.subcommands = subcommands
    }

}

/// `--long`, maybe `-s`: a flag, or an option that takes a value.
struct OptionSpec: Sendable {
    enum Kind: Sendable {
        /// Present or not; given again, counted (`-vv`).
        case flag
        /// Takes a value; given again, the last one counts.
        case value
        /// Takes a value; repeatable, every value kept in order.
        case repeating
    }

    let long: String
    let short: Unicode.Scalar?
    let kind: Kind
    /// What `--help` calls the value: `--memory <MiB>`.
    let valueName: String
    let help: String
    /// Shown in `--help` as "(default: ...)".
    let defaultValue: String?
    /// Accepted, but left out of `--help` (internal or test hooks).
    let hidden: Bool

    static func flag(_ long: String, short: Unicode.Scalar? = nil, help: String, hidden: Bool = false) -> OptionSpec {
        OptionSpec(long: long, short: short, kind: .flag, valueName: "", help: help, defaultValue: nil, hidden: hidden)
    }

    static func value(_ long: String, short: Unicode.Scalar? = nil, valueName: String? = nil, default defaultValue: String? = nil,
                      help: String, hidden: Bool = false) -> OptionSpec {
        OptionSpec(long: long, short: short, kind: .value, valueName: valueName ?? long, help: help,
                   defaultValue: defaultValue, hidden: hidden)
    }

    static func repeating(_ long: String, short: Unicode.Scalar? = nil, valueName: String? = nil, help: String) -> OptionSpec {
        OptionSpec(long: long, short: short, kind: .repeating, valueName: valueName ?? long, help: help,
                   defaultValue: nil, hidden: false)
    }

    /// "-e, --env <KEY=VALUE>" as usage and help show it.
    var synopsis: String {
        var text = short.map { "-\(Character($0)), " } ?? ""
        text += "--" + long
        if kind != .flag { text += " <\(valueName)>" }
        return text
    }
}

/// A word that is not an option, in order: `skiff restore DIR`.
struct PositionalSpec: Sendable {
    let name: String
    let help: String
    /// Takes every remaining word that is not an option (`skiff image rm ID...`).
    var repeating = false
}

/// What a command does with words past its own.
enum TrailingSpec: Sendable {
    /// Nothing: a stray word is an error.
    case none
    /// The words after "--" are the guest's command (`skiff restore DIR -- CMD`).
    case afterTerminator(name: String, help: String)
    /// Every word after the last positional, options included, as `docker run
    /// IMAGE ls -l` passes `-l` to `ls`.
    case afterPositionals(name: String, help: String)
    /// Every word, unread: `skiff bench` hands them to `skiff-bench`.
    case everything(name: String, help: String)
}
