import Glibc
import Testing
@testable import SkiffKit

/// A host program run for its output: stdout captured, the environment
/// added to this process's, its status kept, stdin empty.
@Suite struct HostCommandTests {
    @Test func capturesOutputAndStatusWithTheGivenEnvironment() throws {
        let result = try HostCommand.run(["/bin/sh", "-c", "echo \"$SKIFF_TEST_WORD\"; read x || echo no-input; exit 3"],
                                         environment: ["SKIFF_TEST_WORD": "carried"])
        #expect(result.status == 3)
        #expect(result.output == "carried\nno-input\n")
        #expect(processEnvironment()["SKIFF_TEST_WORD"] == nil, "added for the child only")
    }

    @Test func aProgramThatIsNotThereIsAnError() {
        #expect(throws: MachineError.self) { try HostCommand.run(["skiff-no-such-program"]) }
    }
}
