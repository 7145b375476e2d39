import Glibc
import Host
import Testing

/// Host's system-call helpers: the one EINTR retry, exact-length transfers,
/// reading to the end and waiting for a child.
@Suite struct SystemCallTests {
    @Test func anInterruptedCallIsRetriedAndARealErrorIsNot() {
        var calls = 0
        let result = retryingInterrupts { () -> Int in
            calls += 1
            if calls < 3 { errno = EINTR; return -1 }
            return 42
        }
        #expect(result == 42 && calls == 3)
        calls = 0
        let failed = retryingInterrupts { () -> Int32 in
            calls += 1
            errno = EBADF
            return -1
        }
        #expect(failed == -1 && errno == EBADF && calls == 1)
    }

    @Test func aTransferIsRepeatedUntilDoneAndStopsOnErrorOrNoProgress() {
        var steps: [Int] = []
        let done = transferAll(10) { done -> Int in
            steps.append(done)
            if steps.count == 2 { errno = EINTR; return -1 }
            return min(4, 10 - done)
        }
        #expect(done == nil)
        #expect(steps == [0, 4, 4, 8], "partial steps resume where they stopped; EINTR repeats the step")
        #expect(transferAll(10) { _ in errno = ENOSPC; return -1 } == ENOSPC)
        #expect(transferAll(10) { _ in 0 } == EIO, "no progress (end of file) is an error, not a loop")
        #expect(transferAll(0) { _ in -1 } == nil)
    }

    @Test func aPipeIsReadToItsEndAndAChildsStatusIsAShells() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let message = Array(repeating: Array("skiff\n".utf8), count: 30_000).flatMap { $0 }
        let writer = fork()
        if writer == 0 {
            close(fds[0])
            _ = message.withUnsafeBytes { writeAll(fds[1], $0) }
            _exit(7)
        }
        close(fds[1])
        #expect(readToEnd(fds[0]) == message)
        close(fds[0])
        #expect(waitForChild(writer) == 7)
        // SIGKILL: the test runner's threads may block other signals, and a
        // forked child inherits the mask.
        let killed = fork()
        if killed == 0 { while true { pause() } }
        kill(killed, SIGKILL)
        #expect(waitForChild(killed) == 128 + SIGKILL)
        #expect(waitForChild(killed) == nil, "no such child any more")
    }

    @Test func vectoredTransfersMoveSegmentsBackToBackAndEndOfFileIsAnError() throws {
        let path = "/tmp/skiff-host-test-\(getpid())"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let parts: [[UInt8]] = [Array(repeating: 1, count: 3), [], Array(repeating: 2, count: 5000), [3]]
        let buffers = parts.map { part -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(part.count, 1), alignment: 8)
            buffer.copyBytes(from: part)
            return UnsafeMutableRawBufferPointer(rebasing: buffer[0..<part.count])
        }
        defer { for buffer in buffers { UnsafeMutableRawBufferPointer(start: buffer.baseAddress, count: max(buffer.count, 1)).deallocate() } }
        #expect(transferVectored(fd, buffers, at: 100, writing: true) == nil)
        var onDisk = [UInt8](repeating: 0, count: 5004)
        #expect(pread(fd, &onDisk, onDisk.count, 100) == 5004)
        #expect(onDisk == parts.flatMap { $0 })
        // Read back split differently.
        let whole = UnsafeMutableRawBufferPointer.allocate(byteCount: 5004, alignment: 8)
        defer { whole.deallocate() }
        let halves = [UnsafeMutableRawBufferPointer(rebasing: whole[0..<2502]), UnsafeMutableRawBufferPointer(rebasing: whole[2502...])]
        #expect(transferVectored(fd, halves, at: 100, writing: false) == nil)
        #expect(Array(whole) == parts.flatMap { $0 })
        #expect(transferVectored(fd, halves, at: 200, writing: false) == EIO, "past the end of the file")
    }
}

@Suite struct PipeTests {
    @Test func bothEndsCloseOnExecAndCarryBytes() throws {
        let pipe = try makePipe()
        defer { close(pipe.read); close(pipe.write) }
        #expect(fcntl(pipe.read, F_GETFD) & FD_CLOEXEC != 0 && fcntl(pipe.write, F_GETFD) & FD_CLOEXEC != 0)
        #expect([UInt8]("hi".utf8).withUnsafeBytes { writeAll(pipe.write, $0) } == nil)
        var buffer = [UInt8](repeating: 0, count: 2)
        #expect(read(pipe.read, &buffer, 2) == 2 && buffer == Array("hi".utf8))
    }
}

/// Host's one spawn: descriptors placed as asked (a source that is also a
/// target included), signals unblocked, the environment given, failures said.
@Suite struct SpawnProcessTests {
    @Test func placesDescriptorsUnblocksSignalsAndPassesTheEnvironment() throws {
        let out = try makePipe()
        let three = try makePipe()
        defer { close(out.read); close(three.read) }
        // The parent blocks SIGTERM, as skiff does in every thread.
        var term = sigset_t(), previous = sigset_t()
        sigemptyset(&term)
        sigaddset(&term, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &term, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        // fd 1 gets what fd 3 has and fd 3 what fd 1 has: each source is also another's target.
        let pid = try spawnProcess(
            ["/bin/sh", "-c", "echo \"$GREETING\" >&3; grep SigBlk /proc/self/status; read x || echo stdin-empty >&3"],
            descriptors: [(0, .null), (1, .descriptor(three.write)), (3, .descriptor(out.write))],
            environment: ["GREETING=hello", "PATH=/usr/bin:/bin"])
        close(out.write)
        close(three.write)
        #expect(String(decoding: readToEnd(out.read), as: UTF8.self) == "hello\nstdin-empty\n")
        #expect(String(decoding: readToEnd(three.read), as: UTF8.self) == "SigBlk:\t0000000000000000\n")
        #expect(waitForChild(pid) == 0)
    }

    @Test func aMissingProgramIsAnErrorNotAChild() {
        #expect(throws: SystemCallError("cannot run /nonexistent/program", ENOENT)) {
            try spawnProcess(["/nonexistent/program"])
        }
        #expect(throws: SystemCallError.self) { try spawnProcess([]) }
    }
}
