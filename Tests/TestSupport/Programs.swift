import Foundation
import Synchronization

/// Whether this process may open /dev/kvm.
public let kvmUsable = FileManager.default.isReadableFile(atPath: "/dev/kvm") && FileManager.default.isWritableFile(atPath: "/dev/kvm")

/// The repository's root directory.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// An executable of this package built next to the test binary (`swift build` first).
public func builtExecutable(_ name: String) -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // On Linux the test binary is <build>/debug/SkiffPackageTests.xctest.
    if directory.lastPathComponent.hasSuffix(".xctest") { directory = directory.deletingLastPathComponent() }
    return directory.appendingPathComponent(name).path
}

/// The test image (scripts/make-test-image.sh): two layers with a whiteout, an
/// opaque directory, links, a non-root user, Entrypoint + Cmd, Env, WorkingDir.
public let testImage: String? = {
    let script = repositoryRoot + "/scripts/make-test-image.sh"
    guard let result = try? runProgram(["/bin/bash", script]), result.status == 0 else { return nil }
    return result.stdout.split(separator: "\n").first { $0.hasPrefix("image=") }.map { String($0.dropFirst(6)) }
}()

/// Runs a program to completion; stdin, stdout and stderr go through files (no pipe can fill up).
public func runProgram(_ arguments: [String], input: Data? = nil, environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    let directory = FileManager.default.temporaryDirectory
    let out = directory.appendingPathComponent("skiff-out-\(UUID())"), err = directory.appendingPathComponent("skiff-err-\(UUID())")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/env")
    process.arguments = arguments[0].hasPrefix("/") ? Array(arguments.dropFirst()) : arguments
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    if let input {
        let file = directory.appendingPathComponent("skiff-in-\(UUID())")
        try input.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        process.standardInput = try FileHandle(forReadingFrom: file)
    }
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    try process.run()
    process.waitUntilExit()
    return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
}


/// bench/start/make-tiny-guest.py's 64-bit ELF guest, made once per process
/// and kind: it resets the machine at once, or (`spin`) loops until stopped.
/// Nil when it could not be made (the test that needs it then fails on it).
public func tinyGuest(spin: Bool) -> String? {
    spin ? spinningTinyGuest : resettingTinyGuest
}

private let spinningTinyGuest = makeTinyGuest(spin: true)
private let resettingTinyGuest = makeTinyGuest(spin: false)

private func makeTinyGuest(spin: Bool) -> String? {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-tiny-\(spin ? "spin" : "reset")-\(getpid()).elf").path
    let arguments = ["/usr/bin/env", "python3", repositoryRoot + "/bench/start/make-tiny-guest.py"] + (spin ? ["--spin"] : []) + [path]
    guard let made = try? runProgram(arguments), made.status == 0 else { return nil }
    removedAtExit.withLock { $0.append(path) }
    return path
}

/// Files the test process made for its whole life, removed when it exits.
private let removedAtExit: Mutex<[String]> = {
    atexit { removedAtExit.withLock { paths in for path in paths { unlink(path) } } }
    return Mutex([])
}()
