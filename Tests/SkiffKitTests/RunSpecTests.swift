import Platform
import Devices
import Foundation
@testable import Images
import Testing
import TestSupport
@testable import Container
@testable import SkiffKit

@Suite struct GuestRunSpecTests {
    let spec = ContainerSpec(arguments: ["/bin/sh", "-c", "echo \"a b\" $X"], environment: ["X=1", "EMPTY="],
                             workingDirectory: "/srv", identity: .init(uid: 1000, gid: 50, groups: [50, 10], home: "/home/app"),
                             hostname: "box", terminal: true, interactive: false)

    @Test func recordsAreNULTerminatedKeyValuesVersionFirst() {
        let bytes = GuestRunSpec.encode(spec, rootDevice: "/dev/vda", terminalSize: (rows: 40, columns: 120))
        let records = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        #expect(bytes.last == 0)
        #expect(records.dropLast() == [
            "skiff-run-spec=1", "root=/dev/vda", "arg=/bin/sh", "arg=-c", "arg=echo \"a b\" $X", "env=X=1", "env=EMPTY=",
            "cwd=/srv", "hostname=box", "uid=1000", "gid=50", "group=50", "group=10", "tty=1", "interactive=0",
            "rows=40", "columns=120",
        ])
    }

    /// The other side of the protocol: guest/init/run_spec.c, compiled for the
    /// host and fed what the VMM writes, prints what it parsed.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/cc"), "needs a C compiler"))
    func theGuestInitParsesWhatTheVMMWrites() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-spec-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let harness = directory.appendingPathComponent("harness.c").path
        try """
            #include <stdio.h>
            #include "run_spec.h"
            int main(int argc, char **argv) {
                struct run_spec s; char error[256]; size_t size = 0;
                char *data = run_spec_read(argv[1], &size, error, sizeof error);
                if (!data) { printf("result %d %s\\n", error[0] ? -1 : 0, error); return 0; }
                if (argc > 2) { int later; const char *root = run_spec_preparation(data, size, &later); printf("root %s%s\\n", root ? root : "none", later ? " later" : ""); return 0; }
                int found = run_spec_parse(data, size, argv[1], &s, error, sizeof error);
                if (found <= 0) { printf("result %d %s\\n", found, found < 0 ? error : ""); return 0; }
                for (char **a = s.argv; *a; a++) printf("arg[%s]\\n", *a);
                for (char **e = s.envp; *e; e++) printf("env[%s]\\n", *e);
                printf("cwd %s host %s root %s", s.cwd, s.hostname, s.root);
                if (s.root_size) printf(" size %llu", s.root_size);
                printf(" uid %u gid %u groups", s.uid, s.gid);
                for (int i = 0; i < s.group_count; i++) printf(" %u", s.groups[i]);
                printf(" tty %d interactive %d size %ux%u\\n", s.tty, s.interactive, s.rows, s.columns);
                for (int i = 0; i < s.file_count; i++) {
                    if (s.files[i].directory) { printf("dir %s %o\\n", s.files[i].path, s.files[i].mode); continue; }
                    printf("file %s %o %zu [", s.files[i].path, s.files[i].mode, s.files[i].size);
                    fwrite(s.files[i].data, 1, s.files[i].size, stdout);
                    printf("]\\n");
                }
                return 0;
            }
            """.write(toFile: harness, atomically: true, encoding: .utf8)
        let binary = directory.appendingPathComponent("harness").path
        let compiled = try runProgram(["/usr/bin/cc", "-Wall", "-Werror", "-I", repositoryRoot + "/guest/init", "-o", binary,
                                       harness, repositoryRoot + "/guest/init/run_spec.c"])
        try #require(compiled.status == 0, "\(compiled.stderr)")

        func parse(_ bytes: [UInt8]) throws -> String {
            let file = directory.appendingPathComponent("spec-\(UUID())").path
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            return try runProgram([binary, file]).stdout
        }
        #expect(try parse(GuestRunSpec.encode(spec, rootDevice: "/dev/vda", terminalSize: (rows: 40, columns: 120))) == """
            arg[/bin/sh]
            arg[-c]
            arg[echo "a b" $X]
            env[X=1]
            env[EMPTY=]
            cwd /srv host box root /dev/vda uid 1000 gid 50 groups 50 10 tty 1 interactive 0 size 40x120

            """)
        let filePrefix = "skiff-run-spec=1\0arg=x\0root=/dev/vda\0uid=0\0gid=0\0"
        #expect(try runProgram([binary, directory.path + "/missing"]).stdout == "result 0 \n", "no file: plain boot")
        // The OCI runtime's guest attaches its root at the hand-over, and waits for this size.
        #expect(try parse(GuestRunSpec.encode(spec, rootDevice: "/dev/vda", rootSize: 1 << 40)).contains("root /dev/vda size 1099511627776 uid"))
        for bad in ["0", "513", "-512", "x", "512x", "", "18446744073709551104", "99999999999999999999999"] {
            #expect(try parse(Array((filePrefix + "root-size=\(bad)\0").utf8)).contains("bad root size"), "\(bad)")
        }
        // An OCI bundle's bind-mounted files travel whole, any byte, with their mode.
        let files = try parse(GuestRunSpec.encode(spec, rootDevice: "/dev/vda",
                                                  files: [GuestFile(path: "/etc/hosts", mode: 0o644, bytes: Array("127.0.0.1 box\n".utf8)),
                                                          GuestFile(path: "/run/a:b", mode: 0o4755, bytes: [0x41, 0x0A, 0x00, 0x42]),
                                                          GuestFile(path: "/data/x y", mode: 0o750, bytes: nil)]))
        #expect(files.hasSuffix("file /etc/hosts 644 14 [127.0.0.1 box\n]\nfile /run/a:b 4755 4 [A\n\u{0}B]\ndir /data/x y 750\n"), "\(files)")
        for bad in ["dir=755:relative", "dir=9999:/x", "dir=:/x", "dir=755", "dir=7a5:/x"] {
            #expect(try parse(Array((filePrefix + bad + "\0").utf8)).contains("bad dir record"), "\(bad)")
        }
        for bad in ["file=644:4g:/x", "file=644:414:/x", "file=644:41:relative", "file=99999:41:/x", "file=644:41", "file=:41:/x"] {
            #expect(try parse(Array((filePrefix + bad + "\0").utf8)).contains("bad file record"), "\(bad)")
        }
        // The preparation `skiff run` puts in the initramfs: the root, nothing of the run.
        func preparation(_ bytes: [UInt8]) throws -> String {
            let file = directory.appendingPathComponent("prep-\(UUID())").path
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            return try runProgram([binary, file, "prepare"]).stdout
        }
        #expect(try preparation(GuestRunSpec.preparation(rootDevice: "/dev/vda")) == "root /dev/vda\n")
        #expect(try preparation(GuestRunSpec.preparation(rootDevice: "/dev/vda", attachedAtHandover: true)) == "root /dev/vda later\n")
        #expect(try preparation(Array("skiff-prepare=1\0root=/etc\0".utf8)) == "root none\n")
        #expect(try preparation(Array("skiff-prepare=1\0root=/dev/vda".utf8)) == "root none\n", "unterminated")
        #expect(try preparation(GuestRunSpec.encode(spec, rootDevice: "/dev/vda")) == "root none\n", "a full spec is not a preparation")
        #expect(try parse([]).hasPrefix("result -1"), "an empty file is a broken spec")
        #expect(try parse(Array("skiff-run-spec=2\0".utf8)).contains("not a version 1 run spec"))
        #expect(try parse(Array("skiff-run-spec=1\0root=/dev/vda\0uid=0\0gid=0\0".utf8)).contains("no command"))
        #expect(try parse(Array("skiff-run-spec=1\0arg=x\0root=/dev/vda\0uid=-1\0gid=0\0".utf8)).contains("bad uid"))
        #expect(try parse(Array("skiff-run-spec=1\0arg=x\0root=/etc/passwd\0uid=0\0gid=0\0".utf8)).contains("not a /dev path"))
        #expect(try parse(Array("skiff-run-spec=1\0arg=x\0root=/dev/vda\0uid=0\0gid=0\0cwd=relative\0".utf8)).contains("not absolute"))
        #expect(try parse(Array("skiff-run-spec=1\0arg=x\0root=/dev/vda\0uid=0\0gid=0".utf8)).contains("NUL-terminated"))
        #expect(try parse(Array("skiff-run-spec=1\0what=ever\0".utf8)).contains("unknown record"))
        #expect(try parse(Array("skiff-run-spec=1\0noequals\0".utf8)).contains("without '='"))
    }

    @Test func aRestoresHandOverCarriesItsCommandAndHostname() {
        #expect(GuestHandover.command([]).isEmpty, "nothing to hand over: the guest runs what it booted with")
        #expect(GuestHandover.command(["/bin/echo", "a b"], hostname: "clone") == Array("skiff-command=1\0arg=/bin/echo\0arg=a b\0hostname=clone\0".utf8))
        #expect(GuestHandover.command([], hostname: "h") == Array("skiff-command=1\0hostname=h\0".utf8))
    }

    @Test func theAppendixIsANewcArchiveWithThePreparation() {
        let archive = GuestRunSpec.initramfsAppendix(GuestRunSpec.preparation(rootDevice: "/dev/vda"))
        let text = String(decoding: archive, as: UTF8.self)
        #expect(archive.count % 4 == 0)
        #expect(text.hasPrefix("070701"))
        #expect(text.contains("skiff\0") && text.contains("skiff/run-spec\0") && text.contains("TRAILER!!!\0"))
        #expect(text.contains("skiff-prepare=1\0root=/dev/vda\0"))
    }
}

@Suite struct InitramfsArchiveTests {
    @Test func headersFieldsAndPaddingByteByByte() {
        var archive = InitramfsArchive()
        archive.file("/a", [0x41, 0x42, 0x43], mode: 0o600)
        let bytes = archive.finished()
        let header = String(decoding: bytes[0..<110], as: UTF8.self)
        // magic, ino 1, mode 0100600, uid, gid, nlink 1, mtime, size 3, dev, rdev, namesize 2 ("a\0"), check
        #expect(header == "070701" + "00000001" + "00008180" + "00000000" + "00000000" + "00000001" + "00000000"
                + "00000003" + "00000000" + "00000000" + "00000000" + "00000000" + "00000002" + "00000000")
        #expect(Array(bytes[110..<112]) == [0x61, 0])  // "a\0", header+name = 112: aligned
        #expect(Array(bytes[112..<116]) == [0x41, 0x42, 0x43, 0])  // data padded to 4
        #expect(String(decoding: bytes[116..<122], as: UTF8.self) == "070701")
        #expect(bytes.count % 4 == 0)
    }

    @Test func concatenationAlignsTheSecondArchive() {
        #expect(InitramfsArchive.concatenate([1, 2, 3, 4, 5], [9]) == [1, 2, 3, 4, 5, 0, 0, 0, 9])
        #expect(InitramfsArchive.concatenate([1, 2, 3, 4], [9]) == [1, 2, 3, 4, 9])
        #expect(InitramfsArchive.concatenate([1, 2, 3], []) == [1, 2, 3])
    }
}

@Suite struct StandardInputFramingTests {
    @Test func escapeBytesAreDoubledAndEndOfInputIsDistinct() {
        #expect(StandardInputFraming.encode([1, 0xFF, 0, 0xFF, 0xFF]) == [1, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(StandardInputFraming.endOfInput == [0xFF, 0x00])
        // Every byte value round-trips through the guest's decoder rule.
        let all = (0...255).map(UInt8.init)
        var decoded: [UInt8] = []
        var escaped = false
        for byte in StandardInputFraming.encode(all) + StandardInputFraming.endOfInput {
            if escaped { escaped = false; if byte == 0 { break }; decoded.append(byte) } else if byte == 0xFF { escaped = true } else { decoded.append(byte) }
        }
        #expect(decoded == all)
    }
}

@Suite struct SharedInterruptLineTests {
    final class Recorder: InterruptLine, @unchecked Sendable {
        var levels: [Bool] = []
        func set(high: Bool) { levels.append(high) }
    }

    @Test func theLineIsTheORofItsInputsWithOneEdgePerChange() {
        let recorder = Recorder()
        let shared = SharedInterruptLine(recorder)
        let console = shared.input(0), errors = shared.input(1)
        console.set(high: true)
        errors.set(high: true)    // already high: no new edge
        console.set(high: false)  // errors still holds it
        #expect(recorder.levels == [true])
        errors.set(high: false)
        #expect(recorder.levels == [true, false])
        errors.set(high: false)
        #expect(recorder.levels == [true, false])
    }
}
