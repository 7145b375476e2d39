import SkiffKit

/// Options that `skiff boot` and `skiff restore` (and `run`, through
/// VMOptions) declare alike: one declaration, one check.
extension OptionSpec {
    static let console = OptionSpec.value("console", valueName: "stdio|none|file:PATH", default: "stdio",
                                          help: "Where the serial console goes.")
    static let timeout = OptionSpec.value("timeout", valueName: "seconds", help: "Stop the VM after this many seconds (exit status 124).")
}

extension ParsedArguments {
    /// `--console`: stdio (the default), none or file:PATH.
    func console() throws(UsageError) -> ConsoleMode {
        let console = string("console") ?? "stdio"
        guard let mode = ConsoleMode(argument: console) else {
            throw UsageError("--console must be stdio, none or file:PATH, not '\(console)'")
        }
        return mode
    }
}
