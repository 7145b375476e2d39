import Devices
import Glibc

/// `skiff run`'s serial lines. ttyS0 stays the kernel's console; the
/// container's stdout travels on ttyS1 (0x2F8, IRQ 3) and its stderr on ttyS2
/// (0x3E8, IRQ 4, shared with ttyS0 as on a PC), so the three never mix.
/// Standard input, when forwarded, goes into ttyS1.
public struct ContainerLines: Sendable {
    public enum Input: Sendable, Equatable {
        /// Standard input is not forwarded (the container reads /dev/null).
        case none
        /// `-i`: bytes pass through `StandardInputFraming`, so that EOF reaches the container.
        case framed
        /// `-t`: the guest's ttyS1 is a terminal; keystrokes pass as they are
        /// (raw mode on the host; Ctrl-a x detaches).
        case terminal
    }

    public var standardOutput: Int32 = STDOUT_FILENO
    public var standardError: Int32 = STDERR_FILENO
    public var input: Input = .none
    /// With `.terminal`, Ctrl-a x detaches (`skiff run -t`); an OCI runtime's
    /// pseudo-terminal passes every byte through.
    public var detachEscape = true

    public init(input: Input = .none) { self.input = input }
}

/// How host standard input reaches the container without a terminal: one
/// escape byte (0xFF). 0xFF 0xFF is a literal 0xFF, 0xFF 0x00 is end of input.
/// guest/init/container.c decodes it (SKIFF_STDIN_ESCAPE).
public enum StandardInputFraming {
    public static let escape: UInt8 = 0xFF
    public static let endOfInput: [UInt8] = [0xFF, 0x00]

    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(byte)
            if byte == escape { out.append(escape) }
        }
        return out
    }
}

/// Control messages to the guest init on ttyS2's receive side, which carries
/// nothing else (guest/init/container.h, SKIFF_CONTROL_*): three bytes each.
public enum ContainerControl {
    static let escape: UInt8 = 0xFF

    /// Deliver `signal` to the container's process, or (`all`) to every process in the guest but init.
    public static func signal(_ signal: Int32, all: Bool = false) -> [UInt8] {
        [escape, all ? UInt8(ascii: "A") : UInt8(ascii: "S"), UInt8(truncatingIfNeeded: signal)]
    }

    /// The container's terminal takes this size (its foreground processes get SIGWINCH).
    public static func windowSize(rows: UInt16, columns: UInt16) -> [UInt8] {
        [escape, UInt8(ascii: "W"), UInt8(rows >> 8), UInt8(rows & 0xFF), UInt8(columns >> 8), UInt8(columns & 0xFF)]
    }
}
