import ArgumentParser
import Testing
@testable import SkiffCLI
@testable import SkiffKit

@Suite struct RunArgumentTests {
    @Test func parsesEveryRunOptionAndTheCommandAfterTheImage() throws {
        let command = try Skiff.parseAsRoot([
            "run", "--memory", "256", "--cpus", "2", "-e", "A=1", "--env", "B", "-w", "/srv", "-u", "app:staff",
            "-i", "-t", "--entrypoint", "/bin/sh", "--hostname", "box", "--timings", "--disk", "/d.img,ro",
            "oci:/images/x:latest", "--", "-c", "echo hi",
        ])
        let run = try #require(command as? Skiff.Run)
        #expect(run.image == "oci:/images/x:latest")
        #expect(run.vm.memory == 256 && run.vm.cpus == 2 && run.vm.timings && run.vm.disk == ["/d.img,ro"])
        let options = run.containerOptions
        #expect(options.entrypoint == "/bin/sh" && options.arguments == ["-c", "echo hi"])
        #expect(options.environment == ["A=1", "B"] && options.workingDirectory == "/srv" && options.user == "app:staff")
        #expect(options.hostname == "box" && options.terminal && options.interactive)
    }

    @Test func flagsAfterTheImageBelongToTheCommandAsUnderDocker() throws {
        let run = try #require(try Skiff.parseAsRoot(["run", "img", "ls", "-l", "--color"]) as? Skiff.Run)
        #expect(run.containerOptions.arguments == ["ls", "-l", "--color"])
        #expect(run.containerOptions.entrypoint == nil)
        let bare = try #require(try Skiff.parseAsRoot(["run", "img"]) as? Skiff.Run)
        #expect(bare.containerOptions.arguments.isEmpty && !bare.containerOptions.terminal)
    }

    @Test(arguments: [["run"], ["run", "--cpus", "0", "img"], ["run", "--no-such-flag", "img"], ["image", "rm"], ["image", "frobnicate"]])
    func rejectsBadArguments(arguments: [String]) {
        #expect(throws: (any Error).self) { try Skiff.parseAsRoot(arguments) }
    }
}
