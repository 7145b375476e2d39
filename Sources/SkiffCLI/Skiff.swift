import CSystem
import Glibc
import Host
import SkiffKit

/// One `skiff` command: what it accepts, itself built from the words given,
/// then run. `init` refuses what the command cannot do (`UsageError`), so that
/// nothing is started on a bad command line.
protocol SkiffCommand {
    static var spec: CommandSpec { get }
    init(_ arguments: ParsedArguments) throws(UsageError)
    func run() throws
}

/// `skiff`: the command-line front of SkiffKit. It parses, calls, prints.
/// The words are read against `CommandSpec` tables (see there for why not
/// swift-argument-parser).
public enum Skiff {
    /// A command, or a group of them (`skiff image`), found by its name.
    /// A spec is built only for the command the words name (building all of
    /// them, their arrays and strings, was a cost of every start).
    struct Node {
        let name: String
        let command: (any SkiffCommand.Type)?
        private let groupSpec: (() -> CommandSpec)?
        let children: [Node]

        init(_ name: String, _ command: any SkiffCommand.Type) {
            self.name = name
            self.command = command
            groupSpec = nil
            children = []
        }

        init(_ name: String, _ spec: @escaping () -> CommandSpec, _ children: [Node]) {
            self.name = name
            command = nil
            groupSpec = spec
            self.children = children
        }

        var spec: CommandSpec { command?.spec ?? groupSpec!() }
    }

    static let spec = CommandSpec(name: "skiff", abstract: "A microVM monitor for Linux on /dev/kvm.",
                                  subcommands: [Boot.spec, Restore.spec, Run.spec, Image.spec, Bench.spec].map { ($0.name, $0.abstract) })

    static var tree: Node { Node("skiff", { spec }, [
        Node("boot", Boot.self), Node("restore", Restore.self), Node("run", Run.self),
        Node("image", { Image.spec }, [Node("ls", Image.List.self), Node("rm", Image.Remove.self), Node("prune", Image.Prune.self)]),
        Node("bench", Bench.self),
    ]) }

    /// A usage error, with the usage line of the command it concerns.
    struct Refusal: Error {
        let error: UsageError
        let spec: CommandSpec
        let path: String
    }

    /// The command `words` (without the program name) ask for, parsed and
    /// checked. Throws `HelpRequest` for -h, --help and `skiff help ...`,
    /// `VersionRequest` for `skiff --version`,
    /// `Refusal` for a wrong command line.
    static func parse(_ words: [String]) throws -> any SkiffCommand { try resolve(words).command }

    /// `parse`, and the words that named the command ("skiff image rm").
    static func resolve(_ words: [String]) throws -> (command: any SkiffCommand, path: String) {
        var node = tree
        var path = "skiff"
        var rest = words[...]
        while node.command == nil {
            guard let word = rest.first else { throw HelpRequest(spec: node.spec, path: path) }
            if word == "-h" || word == "--help" { throw HelpRequest(spec: node.spec, path: path) }
            if word == "--version" && path == "skiff" { throw VersionRequest() }
            if word == "help" {
                // `skiff help image ls`: the help of the command those words name.
                for name in rest.dropFirst() {
                    guard let child = node.children.first(where: { $0.name == name }) else {
                        throw Refusal(error: UsageError("Unexpected argument '\(name)'"), spec: node.spec, path: path)
                    }
                    node = child
                    path += " " + name
                }
                throw HelpRequest(spec: node.spec, path: path)
            }
            guard let child = node.children.first(where: { $0.name == word }) else {
                let problem = word.hasPrefix("-") ? "Unknown option '\(word)'" : "Unexpected argument '\(word)'"
                throw Refusal(error: UsageError(problem), spec: node.spec, path: path)
            }
            node = child
            path += " " + word
            rest = rest.dropFirst()
        }
        do {
            return (try node.command!.init(ParsedArguments(Array(rest), spec: node.spec, path: path)), path)
        } catch let error as UsageError {
            throw Refusal(error: error, spec: node.spec, path: path)
        }
    }

    /// What `skiff` prints for an error (one line, without "Error: ").
    public static func message(for error: any Error) -> String {
        switch error {
        case let refusal as Refusal: return refusal.error.message
        case let usage as UsageError: return usage.message
        case let help as HelpRequest: return HelpText.help(help.spec, path: help.path)
        default: return "\(error)"
        }
    }

    /// Parses, runs and exits: 0 for help, 64 for a wrong command line, the
    /// status a command throws (`ExitStatus`), 1 for any other error.
    public static func main(_ words: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        let command: any SkiffCommand
        let path: String
        do {
            (command, path) = try resolve(words)
        } catch let help as HelpRequest {
            print(HelpText.help(help.spec, path: help.path))
            exit(0)
        } catch is VersionRequest {
            print("skiff version \(SkiffVersion.number)")
            exit(0)
        } catch let refusal as Refusal {
            exitRefusing(refusal.error, spec: refusal.spec, path: refusal.path)
        } catch {
            printError("Error: \(message(for: error))")
            exit(1)
        }
        do {
            try command.run()
            exit(0)
        } catch let status as ExitStatus {
            exit(status.code)
        } catch let usage as UsageError {
            exitRefusing(usage, spec: type(of: command).spec, path: path)
        } catch {
            printError("Error: \(message(for: error))")
            exit(1)
        }
    }

    static func exitRefusing(_ error: UsageError, spec: CommandSpec, path: String) -> Never {
        printError("Error: \(error.message)\nUsage: \(HelpText.usage(spec, path: path))\n  See '\(path) --help' for more information.")
        exit(64)
    }
}

/// Process start, taken as early as `main` runs, for `--timings`.
nonisolated(unsafe) public var skiffStartTime: UInt64 = 0
/// When `main` ran; later than `skiffStartTime` when a spawner handed its
/// spawn time over, and the difference is what the loader and the Swift
/// runtime cost before `main` (`--timings` shows it).
nonisolated(unsafe) public var skiffMainTime: UInt64 = 0

extension Skiff {
    /// What `main` does first, before any thread exists: malloc set up
    /// (`MallocPolicy`), and the process start for `--timings`: the parent's
    /// CLOCK_MONOTONIC at spawn when it hands one over in SKIFF_SPAWNED_AT
    /// (benchmarks do, so that what the loader and runtime cost before
    /// `main` counts), else now.
    public static func prepareProcess() {
        MallocPolicy.apply()
        let now = MonotonicClock.now()
        skiffStartTime = now
        skiffMainTime = now
        guard let text = getenv("SKIFF_SPAWNED_AT").map({ String(cString: $0) }), let spawned = UInt64(text),
              spawned <= now, now - spawned < 60_000_000_000 else { return }
        skiffStartTime = spawned
    }
}

extension Skiff {
    /// `skiff bench`: runs `skiff-bench` (built and installed beside `skiff`)
    /// with the same arguments, so that `skiff` never loads Foundation.
    struct Bench: SkiffCommand {
        static let spec = CommandSpec(
            name: "bench",
            abstract: "Measure a microVM against a container (crun or runc) on the same image (skiff bench --help).",
            trailing: .everything(name: "arguments", help: "Options of skiff-bench."))

        var arguments: [String]

        init(_ arguments: ParsedArguments) { self.arguments = arguments.trailing }

        func run() throws {
            let path = siblingExecutable("skiff-bench")
            // exec keeps the signal mask: without this, skiff-bench (and
            // whatever it ran) would start with skiff's shutdown signals
            // blocked, and Ctrl-C would not stop it.
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
            execv(path, &argv)
            let error = errno
            printError("skiff: cannot run \(path): \(String(cString: strerror(error)))")
            throw ExitStatus(126)
        }
    }
}
