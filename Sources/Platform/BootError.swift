/// Why a kernel or initrd cannot be booted. Each case names the file and the
/// problem in words for a user; none of them is a crash.
public struct BootError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String

    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(problem)" }

    /// The `file` of an error about the kernel command line, which no file holds.
    public static let commandLineFile = "command line"
}
