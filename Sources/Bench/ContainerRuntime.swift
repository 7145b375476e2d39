import SkiffKit
import CSystem
import Foundation
import Glibc

/// A real OCI runtime (crun or runc) driven the way containerd drives it:
/// `create` (namespaces, mounts, the process waiting to exec), then `start`.
/// The bench is the runtime's subreaper, so the container's process becomes
/// its child and its exit status is the real one.
public struct ContainerRuntime: Sendable {
    public let name: String
    public let path: String

    /// One run's host timestamps (CLOCK_MONOTONIC ns).
    public struct Phases: Codable, Sendable, Equatable {
        public var processStart: UInt64
        public var created: UInt64
        public var started: UInt64
        public var firstOutput: UInt64?
        public var exited: UInt64
        public var exitStatus: Int32
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// crun if it can run the bundle here, else runc; `refusals` says why a runtime was passed over.
    public static func select(bundle: String) -> (runtime: ContainerRuntime?, refusals: [String]) {
        _ = csystem_become_subreaper()
        var refusals: [String] = []
        for name in ["crun", "runc"] {
            let candidates: [String] = ["/usr/bin/" + name, "/usr/sbin/" + name, "/usr/local/bin/" + name]
            guard let path = candidates.first(where: { access($0, X_OK) == 0 }) else {
                refusals.append("\(name): not installed")
                continue
            }
            let runtime = ContainerRuntime(name: name, path: path)
            do {
                _ = try runtime.run(bundle: bundle)
                return (runtime, refusals)
            } catch {
                refusals.append("\(name): \(error)")
            }
        }
        return (nil, refusals)
    }

    /// Creates, starts and waits for one container from `bundle`.
    public func run(bundle: String, timeout: Double = 120) throws(Failure) -> Phases {
        let id = "skiff-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let pidFile = bundle + "/\(id).pid"
        let errors = bundle + "/\(id).err"
        let errorFD = open(errors, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { if errorFD >= 0 { close(errorFD) }; unlink(errors); unlink(pidFile) }
        func failure(_ what: String) -> Failure {
            let text = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").last.map(String.init) ?? "no message"
            return Failure(description: "\(what) failed: \(line)")
        }
        defer {
            let cleanup = try? ChildProcess([path, "delete", "--force", id], captureOutput: false)
            if let cleanup { _ = cleanup.wait() }
        }
        // The container inherits create's stdout: the pipe the bench reads.
        let create: ChildProcess
        do { create = try ChildProcess([path, "create", "--bundle", bundle, "--pid-file", pidFile, id], stderr: errorFD) } catch {
            throw Failure(description: "\(error)")
        }
        let created = create.wait()
        guard created.status == 0 else { throw failure("\(name) create") }
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw failure("\(name) create (no pid file)")
        }
        let start: ChildProcess
        do { start = try ChildProcess([path, "start", id], captureOutput: false, stderr: errorFD) } catch {
            throw Failure(description: "\(error)")
        }
        let started = start.wait()
        guard started.status == 0 else { throw failure("\(name) start") }
        let exited = ChildProcess.wait(pid)
        create.waitForEndOfOutput(seconds: timeout)
        return Phases(processStart: create.spawned, created: created.time, started: started.time,
                      firstOutput: create.firstOutput, exited: exited.time, exitStatus: exited.status)
    }

    /// Starts a container that stays up (for memory measurements): returns
    /// its id, its process and the output reader, once `ready` appears.
    func startDetached(bundle: String, ready: String, timeout: Double) throws(Failure) -> (id: String, pid: pid_t) {
        let id = "skiff-bench-idle-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let pidFile = bundle + "/\(id).pid"
        defer { unlink(pidFile) }
        let create: ChildProcess
        do { create = try ChildProcess([path, "create", "--bundle", bundle, "--pid-file", pidFile, id]) } catch {
            throw Failure(description: "\(error)")
        }
        guard create.wait().status == 0,
              let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let start = try? ChildProcess([path, "start", id], captureOutput: false), start.wait().status == 0 else {
            throw Failure(description: "\(name) could not start an idle container")
        }
        guard create.waitForOutput(ready, seconds: timeout) else { throw Failure(description: "an idle container never said '\(ready)'") }
        return (id, pid)
    }

    func remove(_ id: String, pid: pid_t) {
        if let kill = try? ChildProcess([path, "delete", "--force", id], captureOutput: false) { _ = kill.wait() }
        _ = ChildProcess.wait(pid)
    }
}
