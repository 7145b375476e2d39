/// `--help` and the usage line of a command, rendered from its `CommandSpec`
/// in the layout swift-argument-parser's users know (OVERVIEW, USAGE,
/// ARGUMENTS, OPTIONS, SUBCOMMANDS), wrapped at 80 columns.
enum HelpText {
    static let width = 80
    static let column = 26

    /// "skiff restore [<options>] <directory> [-- <command> ...]"
    static func usage(_ spec: CommandSpec, path: String) -> String {
        var words = [path]
        if !spec.subcommands.isEmpty { words.append("<subcommand>") }
        if spec.options.contains(where: { !$0.hidden }) { words.append("[<options>]") }
        for positional in spec.positionals {
            words.append(positional.repeating ? "<\(positional.name)> ..." : "<\(positional.name)>")
        }
        switch spec.trailing {
        case .none: break
        case .afterTerminator(let name, _): words.append("[-- <\(name)> ...]")
        case .afterPositionals(let name, _), .everything(let name, _): words.append("[<\(name)> ...]")
        }
        return words.joined(separator: " ")
    }

    static func help(_ spec: CommandSpec, path: String) -> String {
        var lines = wrap("OVERVIEW: " + spec.abstract, indent: "")
        if !spec.discussion.isEmpty {
            lines.append("")
            lines += wrap(spec.discussion, indent: "")
        }
        lines += ["", "USAGE: " + usage(spec, path: path)]
        var arguments: [(String, String)] = spec.positionals.map { ("<\($0.name)>", $0.help) }
        switch spec.trailing {
        case .none: break
        case .afterTerminator(let name, let help), .afterPositionals(let name, let help), .everything(let name, let help):
            arguments.append(("<\(name)>", help))
        }
        if !arguments.isEmpty {
            lines += ["", "ARGUMENTS:"]
            for (name, help) in arguments { lines += entry(name, help) }
        }
        lines += ["", "OPTIONS:"]
        for option in spec.options where !option.hidden {
            var help = option.help
            // \u{1}: a space the wrap keeps, so that "(default: x)" stays on one line.
            if let value = option.defaultValue { help += " (default:\u{1}\(value))" }
            lines += entry(option.synopsis, help)
        }
        if path == "skiff" { lines += entry("--version", "Show the version.") }
        lines += entry("-h, --help", "Show help information.")
        if !spec.subcommands.isEmpty {
            lines += ["", "SUBCOMMANDS:"]
            for sub in spec.subcommands { lines += entry(sub.name, sub.abstract) }
            lines += ["", "  See '\(path) help <subcommand>' for detailed help."]
        }
        return String(lines.joined(separator: "\n").map { $0 == "\u{1}" ? " " : $0 })
    }

    /// "  --memory <MiB>          Guest memory in MiB." with the help wrapped
    /// in its column, or starting on the next line when the name is long.
    static func entry(_ name: String, _ help: String) -> [String] {
        let head = "  " + name
        let indent = String(repeating: " ", count: column)
        var body = wrap(help, indent: indent)
        guard head.count < column - 1, let first = body.first else { return [head] + body }
        body[0] = head + String(repeating: " ", count: column - head.count) + first.dropFirst(column)
        return body
    }

    /// `text` in lines of at most `width` columns, each after `indent`; a word
    /// longer than a line stands alone on its own.
    static func wrap(_ text: String, indent: String) -> [String] {
        var lines: [String] = []
        var line = indent
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if line.count > indent.count, line.count + 1 + word.count > width {
                lines.append(line)
                line = indent
            }
            line += (line.count > indent.count ? " " : "") + word
        }
        lines.append(line)
        return lines
    }
}
