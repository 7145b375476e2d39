import FoundationEssentials
import Images

/// The part of an OCI bundle's config.json (runtime-spec) a microVM acts on:
/// the process, the root, the hostname, and what the runtime must say it
/// does not do. Every value is checked here, once, before anything is built.
public struct BundleConfiguration: Decodable, Sendable {
    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var annotations: [String: String]?
    public var linux: Linux?

    public struct Process: Decodable, Sendable {
        public var terminal: Bool?
        public var user: User
        public var args: [String]?
        public var env: [String]?
        public var cwd: String
    }
    public struct User: Decodable, Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]?
    }
    public struct Root: Decodable, Sendable {
        public var path: String
        public var readonly: Bool?
    }
    public struct Mount: Decodable, Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
    }
    public struct Linux: Decodable, Sendable {
        public var namespaces: [Namespace]?
        public var cgroupsPath: String?
    }
    public struct Namespace: Decodable, Sendable {
        public var type: String
        public var path: String?
    }

    /// config.json is small; a larger one is not a bundle's.
    public static let maximumSize = 4 << 20

    public static func decode(_ bytes: [UInt8]) throws(RuntimeError) -> BundleConfiguration {
        guard bytes.count <= maximumSize else { throw .invalidBundle("config.json has \(bytes.count) bytes; at most \(maximumSize)") }
        do { return try JSONDecoder().decode(BundleConfiguration.self, from: Data(bytes)) } catch {
            throw .invalidBundle("config.json: \(Self.describe(error))")
        }
    }

    /// The container's process as Skiff's guest init runs it.
    public func containerSpec(defaultHostname: String) throws(RuntimeError) -> ContainerSpec {
        guard let process else { throw .invalidBundle("config.json has no process") }
        guard let args = process.args, !args.isEmpty, !args[0].isEmpty else { throw .invalidBundle("process.args is empty") }
        guard process.cwd.hasPrefix("/") else { throw .invalidBundle("process.cwd '\(process.cwd)' is not absolute") }
        let environment = process.env ?? []
        if let bad = environment.first(where: { !$0.contains("=") }) { throw .invalidBundle("process.env entry '\(bad)' has no '='") }
        for text in args + environment + [process.cwd, hostname ?? ""] where text.utf8.contains(0) {
            throw .invalidBundle("a NUL byte in process.args, env, cwd or hostname")
        }
        if let hostname, hostname.utf8.count > 64 { throw .invalidBundle("hostname longer than 64 bytes") }
        let groups = [process.user.gid] + (process.user.additionalGids ?? []).filter { $0 != process.user.gid }
        guard groups.count <= 64 else { throw .invalidBundle("more than 64 supplementary groups") }
        let home = environment.first { $0.hasPrefix("HOME=") }.map { String($0.dropFirst(5)) } ?? "/"
        return ContainerSpec(arguments: args, environment: environment, workingDirectory: process.cwd,
                             identity: .init(uid: process.user.uid, gid: process.user.gid, groups: groups, home: home),
                             hostname: hostname ?? defaultHostname, terminal: process.terminal ?? false, interactive: true)
    }

    /// What a VM does not do yet and the runtime says once (bind mounts are
    /// not shared into the guest; a network namespace's interfaces are not given to it).
    public var warnings: [String] {
        var lines: [String] = []
        let binds = (mounts ?? []).filter { $0.type == "bind" || $0.type == nil }.map(\.destination)
        if !binds.isEmpty {
            lines.append("bind mounts are not shared into the microVM yet (\(binds.joined(separator: ", ")))")
        }
        if linux?.namespaces?.contains(where: { $0.type == "network" && $0.path != nil }) == true {
            lines.append("the bundle's network namespace is not given to the microVM: it runs without network")
        }
        return lines
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, context):
            return "missing '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            return "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.dataCorrupted(context):
            return context.codingPath.isEmpty ? "not valid JSON" : "bad value at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        default:
            return "\(error)"
        }
    }
}

/// Why a runtime command failed: one line for the log and for stderr.
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    case usage(String)
    case invalidBundle(String)
    case container(String)
    case system(String)

    public var description: String {
        switch self {
        case let .usage(message): return message
        case let .invalidBundle(message): return "invalid bundle: \(message)"
        case let .container(message): return message
        case let .system(message): return message
        }
    }
}
