import Testing
@testable import SkiffCLI

/// The parser against a small spec of its own: every way getopt_long users
/// write options, and every way to get them wrong.
@Suite struct CommandLineParserTests {
    static let spec = CommandSpec(
        name: "try", abstract: "A test command.",
        options: [
            .flag("verbose", short: "v", help: "Count me."),
            .flag("tty", short: "t", help: "A flag."),
            .flag("interactive", short: "i", help: "A flag."),
            .value("memory", valueName: "MiB", default: "128", help: "A value."),
            .repeating("env", short: "e", valueName: "KEY=VALUE", help: "Repeatable."),
            .value("secret", help: "", hidden: true),
        ],
        positionals: [PositionalSpec(name: "image", help: "The image.")],
        trailing: .afterPositionals(name: "args", help: "The rest."))

    func parse(_ words: [String], _ spec: CommandSpec = Self.spec) throws -> ParsedArguments {
        try ParsedArguments(words, spec: spec, path: "skiff try")
    }

    func refusal(_ words: [String], _ spec: CommandSpec = Self.spec) -> String {
        do {
            _ = try parse(words, spec)
            return "accepted"
        } catch let error as UsageError {
            return error.message
        } catch {
            return "\(type(of: error))"
        }
    }

    @Test func readsEveryForm() throws {
        let parsed = try parse(["-vv", "--verbose", "-it", "--memory=64", "-eA=1", "-e", "B", "--env", "C=3", "--env=D=4",
                                "--secret", "s", "img", "ls", "-l", "--memory", "1"])
        #expect(parsed.count("verbose") == 3 && parsed.flag("tty") && parsed.flag("interactive"))
        #expect(try parsed.int("memory", default: 128) == 64)
        #expect(parsed.strings("env") == ["A=1", "B", "C=3", "D=4"])
        #expect(parsed.string("secret") == "s")
        #expect(parsed.positionals == ["img"])
        #expect(parsed.trailing == ["ls", "-l", "--memory", "1"], "after the image, every word is the command's")
    }

    @Test func aValueMayLookLikeAnOption() throws {
        let parsed = try parse(["--memory", "-5", "-e", "--env", "img"])
        #expect(parsed.string("memory") == "-5" && parsed.strings("env") == ["--env"])
        #expect(try parsed.int("memory", default: 1) == -5)
    }

    @Test func theLastValueCountsAndDefaultsStand() throws {
        let given = try parse(["--memory", "1", "--memory", "2", "img"])
        #expect(try given.int("memory", default: 128) == 2)
        let bare = try parse(["img"])
        #expect(try bare.int("memory", default: 128) == 128 && !bare.flag("tty") && bare.count("verbose") == 0)
        #expect(bare.strings("env").isEmpty && bare.string("secret") == nil && bare.trailing.isEmpty)
    }

    @Test func doubleDashEndsTheOptions() throws {
        let parsed = try parse(["-t", "--", "-image-with-a-dash", "-v"])
        #expect(parsed.positionals == ["-image-with-a-dash"] && parsed.trailing == ["-v"] && parsed.count("verbose") == 0)
        let restore = CommandSpec(name: "restore", abstract: "", options: [.flag("timings", help: "")],
                                  positionals: [PositionalSpec(name: "directory", help: "")],
                                  trailing: .afterTerminator(name: "command", help: ""))
        let command = try parse(["dir", "--timings", "--", "sh", "-c", "--timings"], restore)
        #expect(command.positionals == ["dir"] && command.flag("timings") && command.trailing == ["sh", "-c", "--timings"])
        #expect(refusal(["dir", "sh"], restore) == "Unexpected argument 'sh'", "a command goes after \"--\"")
    }

    @Test(arguments: [
        (["--nope", "img"], "Unknown option '--nope'"),
        (["-x", "img"], "Unknown option '-x'"),
        (["-tx", "img"], "Unknown option '-x'"),
        (["--tty=yes", "img"], "'--tty' takes no value"),
        (["img", "--memory"], "accepted"),
        (["--memory"], "Missing value for '--memory <MiB>'"),
        (["-e"], "Missing value for '-e, --env <KEY=VALUE>'"),
        ([], "Missing expected argument '<image>'"),
        (["-v"], "Missing expected argument '<image>'"),
        (["-h", "--nope"], "Unknown option '--nope'"),
        (["--help", "img"], "HelpRequest"),
        (["-th"], "HelpRequest"),
        (["img", "--help"], "accepted"),
    ])
    func refuses(words: [String], reason: String) {
        #expect(refusal(words) == reason, "\(words)")
    }

    @Test func numbersAreCheckedWhenRead() throws {
        #expect(throws: UsageError("--memory must be a whole number, not '1.5'")) { try parse(["--memory", "1.5", "i"]).int("memory", default: 0) }
        #expect(throws: UsageError("--memory must be a whole number, not ''")) { try parse(["--memory=", "i"]).int("memory", default: 0) }
        #expect(throws: UsageError("--memory must be a number, not 'x'")) { try parse(["--memory", "x", "i"]).double("memory") }
    }

    @Test func aCommandWithoutPositionalsRefusesAStrayWord() {
        let boot = CommandSpec(name: "boot", abstract: "", options: [.flag("timings", help: "")])
        #expect(refusal(["--timings", "vmlinux"], boot) == "Unexpected argument 'vmlinux'")
    }

    @Test func benchPassesEveryWordThrough() throws {
        let bench = try parse(["--help", "--image", "x", "--", "-v"], Skiff.Bench.spec)
        #expect(bench.trailing == ["--help", "--image", "x", "--", "-v"])
    }

    @Test func helpRequestsNameTheirCommand() {
        for words in [["boot", "--help"], ["help", "boot"], ["image"], ["help", "image", "rm"], ["image", "rm", "-h"], []] {
            do {
                _ = try Skiff.parse(words)
                Issue.record("\(words) was accepted")
            } catch let help as HelpRequest {
                let expected = words.filter { !$0.hasPrefix("-") && $0 != "help" }.joined(separator: " ")
                #expect(help.path == (["skiff"] + (expected.isEmpty ? [] : [expected])).joined(separator: " "), "\(words)")
            } catch {
                Issue.record("\(words): \(error)")
            }
        }
        #expect(SkiffCLITests.refusal(of: ["help", "nope"]) == "Unexpected argument 'nope'")
        #expect(SkiffCLITests.refusal(of: ["--nope"]) == "Unknown option '--nope'")
    }

    /// `skiff --version` names the version; below the root it is an unknown
    /// option like any other, and the root's help lists it.
    @Test func versionIsAskedForAtTheRoot() {
        #expect(throws: VersionRequest.self) { try Skiff.parse(["--version"]) }
        #expect(throws: VersionRequest.self) { try Skiff.parse(["--version", "boot"]) }
        #expect(SkiffCLITests.refusal(of: ["boot", "--version"]) == "Unknown option '--version'")
        #expect(SkiffCLITests.refusal(of: ["image", "--version"]) == "Unknown option '--version'")
        #expect(HelpText.help(Skiff.spec, path: "skiff").contains("  --version"))
        #expect(!HelpText.help(Skiff.Boot.spec, path: "skiff boot").contains("--version"))
    }

    @Test func usageLines() {
        #expect(HelpText.usage(Skiff.Boot.spec, path: "skiff boot") == "skiff boot [<options>]")
        #expect(HelpText.usage(Skiff.Restore.spec, path: "skiff restore") == "skiff restore [<options>] <directory> [-- <command> ...]")
        #expect(HelpText.usage(Skiff.Run.spec, path: "skiff run") == "skiff run [<options>] <image> [<args> ...]")
        #expect(HelpText.usage(Skiff.Image.spec, path: "skiff image") == "skiff image <subcommand>")
        #expect(HelpText.usage(Skiff.Image.Remove.spec, path: "skiff image rm") == "skiff image rm <ids> ...")
    }

    @Test func wrapsAtTheWidthAndKeepsLongWordsWhole() {
        let long = String(repeating: "x", count: 100)
        let lines = HelpText.wrap("a b \(long) c", indent: "  ")
        #expect(lines == ["  a b", "  " + long, "  c"])
        let entry = HelpText.entry("--a-very-long-option-name <value>", "Help.")
        #expect(entry == ["  --a-very-long-option-name <value>", String(repeating: " ", count: HelpText.column) + "Help."])
    }
}
