import Testing
@testable import SkiffCLI
@testable import SkiffKit

@Suite struct RunArgumentTests {
    @Test func parsesEveryRunOptionAndTheCommandAfterTheImage() throws {
        let command = try Skiff.parse([
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
        let run = try #require(try Skiff.parse(["run", "img", "ls", "-l", "--color"]) as? Skiff.Run)
        #expect(run.containerOptions.arguments == ["ls", "-l", "--color"])
        #expect(run.containerOptions.entrypoint == nil)
        let bare = try #require(try Skiff.parse(["run", "img"]) as? Skiff.Run)
        #expect(bare.containerOptions.arguments.isEmpty && !bare.containerOptions.terminal)
    }

    @Test(arguments: [
        (["run"], "Missing expected argument '<image>'"),
        (["run", "--cpus", "0", "img"], "--cpus 0 is outside 1–32"),
        (["run", "--timeout", "inf", "img"], "--timeout inf is outside"),
        (["run", "--no-such-flag", "img"], "Unknown option '--no-such-flag'"),
        (["image", "rm"], "Missing expected argument"),
        (["image", "frobnicate"], "Unexpected argument 'frobnicate'"),
    ])
    func rejectsBadArgumentsWithTheirReason(arguments: [String], reason: String) {
        let message = refusal(of: arguments)
        #expect(message.contains(reason), "\(arguments): \(message)")
    }
}
