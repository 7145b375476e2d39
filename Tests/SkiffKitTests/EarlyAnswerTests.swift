import Glibc
import Host
import Synchronization
import Testing
@testable import SkiffKit

/// The work behind an EarlyAnswer runs once, on whichever thread gets to it
/// first, and both threads see its result.
@Suite struct EarlyAnswerTests {
    struct Refused: Error, Equatable {}

    final class Counter: Sendable {
        let runs = Atomic<Int>(0)
    }

    @Test func withoutAnOfferTheAskerWorksItOut() throws {
        let counter = Counter()
        let early = try EarlyAnswer { () throws(Refused) -> Int in counter.runs.add(1, ordering: .relaxed); return 42 }
        #expect(try early.answer() == 42)
        #expect(try early.answer() == 42)
        let runs = counter.runs.load(ordering: .relaxed)
        #expect(runs == 1)
    }

    @Test func anOfferedAnswerIsNotWorkedOutAgain() throws {
        let counter = Counter()
        let early = try EarlyAnswer { () throws(Refused) -> Int in counter.runs.add(1, ordering: .relaxed); return 7 }
        early.offer()
        early.offer()
        #expect(try early.answer() == 7)
        let runs = counter.runs.load(ordering: .relaxed)
        #expect(runs == 1)
    }

    @Test func aFailureReachesTheAsker() throws {
        let counter = Counter()
        let early = try EarlyAnswer { () throws(Refused) -> Int in counter.runs.add(1, ordering: .relaxed); throw Refused() }
        early.offer()
        #expect(throws: Refused.self) { try early.answer() }
        let runs = counter.runs.load(ordering: .relaxed)
        #expect(runs == 1)
    }

    /// The helper is still at work when the answer is needed: the asker waits
    /// for it rather than working it out a second time.
    @Test func theAskerWaitsForAHelperAlreadyAtWork() throws {
        let counter = Counter()
        let started = try EventFD.make(blocking: true, semaphore: false)
        let release = try EventFD.make(blocking: true, semaphore: false)
        let early = try EarlyAnswer { () throws(Refused) -> Int in
            counter.runs.add(1, ordering: .relaxed)
            started.signal()
            _ = release.wait()
            return 3
        }
        let helper = try NativeThread { early.offer() }
        _ = started.wait()
        let answered = Counter()
        let asker = try NativeThread {
            let value = try? early.answer()
            #expect(value == 3)
            answered.runs.add(1, ordering: .releasing)
        }
        // The asker cannot have its answer before the helper is released.
        usleep(50_000)
        let before = answered.runs.load(ordering: .acquiring)
        #expect(before == 0)
        release.signal()
        asker.join()
        helper.join()
        let late = answered.runs.load(ordering: .acquiring)
        #expect(late == 1)
        let runs = counter.runs.load(ordering: .relaxed)
        #expect(runs == 1)
    }

    /// Many racing pairs: the work runs exactly once in each.
    @Test func racingOfferAndAnswerRunTheWorkOnce() throws {
        for round in 0..<200 {
            let counter = Counter()
            let early = try EarlyAnswer { () throws(Refused) -> Int in counter.runs.add(1, ordering: .relaxed); return round }
            let helper = try NativeThread { early.offer() }
            #expect(try early.answer() == round)
            helper.join()
            let runs = counter.runs.load(ordering: .relaxed)
        #expect(runs == 1)
        }
    }
}
