import Synchronization
import Testing
@testable import SkiffKit

@Suite struct LoggerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func writesLinesAtOrAboveItsLevelWithLabelAndMetadata() {
        let captured = Lines()
        var logger = Logger(label: "skiff", logLevel: .info) { line in captured.lines.withLock { $0.append(line) } }
        logger.debug("hidden")
        logger.info("booted", metadata: ["cpus": "2", "memory": "128"])
        logger.warning("slow disk")
        logger.error("gone")
        logger.logLevel = .trace
        logger.trace("now shown")
        #expect(captured.all == ["skiff: booted cpus=2 memory=128", "skiff: warning: slow disk", "skiff: error: gone", "skiff: trace: now shown"])
    }

    @Test func buildsNoTextBelowItsLevel() {
        let logger = Logger(label: "skiff", logLevel: .warning) { _ in }
        let built = Atomic<Int>(0)
        func expensive() -> String { built.add(1, ordering: .relaxed); return "x" }
        logger.debug(expensive(), metadata: ["k": expensive()])
        logger.info(expensive())
        #expect(built.load(ordering: .relaxed) == 0)
        logger.warning(expensive(), metadata: ["k": expensive()])
        #expect(built.load(ordering: .relaxed) == 2)
    }

    @Test func levelsAreOrdered() {
        #expect(Logger.Level.allCases == Logger.Level.allCases.sorted())
        #expect(Logger.Level.allCases.map(\.description) == ["trace", "debug", "info", "notice", "warning", "error", "critical"])
    }
}
