import SkiffKit
import Foundation

/// `skiff bench`'s human outputs: the terminal table and the SVG chart.
public enum BenchRendering {
    static func ms(_ value: Double) -> String { value.isNaN ? "–" : String(format: "%.1f ms", value) }
    static func mb(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
    static func mean(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

    /// The classic container-versus-VM table, with this machine's numbers.
    static func classicRows(_ report: BenchReport) -> [BenchReport.ClassicRow] {
        let vmExit = report.vmPhases.last?.median ?? .nan
        let snapshotExit = report.snapshotPhases.last?.median ?? .nan
        let containerExit = report.containerPhases.last?.median ?? .nan
        func ratio(_ a: Double, _ b: Double) -> String { a.isNaN || b.isNaN || b <= 0 ? "–" : String(format: "%.3g×", a / b) }
        let cpu = report.cpu
        func percent(_ value: Double) -> String { value.isNaN || cpu.nativeMs.isNaN ? "–" : String(format: "%.0f %%", value / cpu.nativeMs * 100) }
        let disk = report.disk
        let memory = report.memory
        let vmPSS = mean(memory.vmPSSMiB), containerPSS = mean(memory.containerPSSMiB), snapshotPSS = mean(memory.snapshotPSSMiB)
        func density(_ pss: Double) -> String { pss.isNaN || pss <= 0 ? "–" : "\(Int(Double(memory.budgetMiB) / pss))" }
        return [
            .init(measure: "startup (median, process start → exit)", vm: ms(vmExit), container: ms(containerExit),
                  note: "\(report.runs) runs; \(report.runtime); VM boots cold (--no-snapshot): \(ratio(vmExit, containerExit)) the container"),
            .init(measure: "startup from the ready snapshot (median)", vm: ms(snapshotExit), container: ms(containerExit),
                  note: "\(ratio(snapshotExit, vmExit)) the cold VM; \(ratio(snapshotExit, containerExit)) the container"),
            .init(measure: "disk footprint (allocated)", vm: mb(disk.rootDiskBytes + disk.kernelBytes + disk.initrdBytes),
                  container: mb(disk.treeBytes),
                  note: "VM: root disk \(mb(disk.rootDiskBytes)) + kernel \(mb(disk.kernelBytes)) + initrd \(mb(disk.initrdBytes)); image layers \(mb(disk.layerBytes)) compressed"),
            .init(measure: "CPU, fixed user-space loop (% of native time)", vm: percent(cpu.vmMs), container: percent(cpu.containerMs),
                  note: "native \(ms(cpu.nativeMs)) (chroot into the image); VM \(ms(cpu.vmMs)), container \(ms(cpu.containerMs))"),
            .init(measure: "memory per idle instance (PSS)", vm: String(format: "%.1f MiB", vmPSS), container: String(format: "%.2f MiB", containerPSS),
                  note: "\(memory.instances) at once, each verified alive; VM guest RAM \(memory.vmMemoryMiB) MiB"),
            .init(measure: "memory per idle restored instance (PSS)", vm: String(format: "%.1f MiB", snapshotPSS),
                  container: String(format: "%.2f MiB", containerPSS),
                  note: "\(memory.instances) restores of one snapshot at once: its memory file is shared copy-on-write"),
            .init(measure: "instances in \(memory.budgetMiB) MiB", vm: "\(density(vmPSS)) / \(density(snapshotPSS))", container: density(containerPSS),
                  note: "budget ÷ PSS; VM booted / restored"),
        ]
    }

    public static func table(_ report: BenchReport) -> String {
        var lines: [String] = []
        lines.append("skiff bench: \(report.image) (\(report.imageID.prefix(19))…), command: \(report.command.joined(separator: " "))")
        lines.append("host: \(report.host.kind), \(report.host.cpus) CPUs, \(report.host.cpuModel), Linux \(report.host.kernel); \(report.date)")
        for warning in report.warnings { lines.append("WARNING: \(warning)") }
        if !report.runtimeRefusals.isEmpty { lines.append("runtime: \(report.runtime) (\(report.runtimeRefusals.joined(separator: "; ")))") }
        lines.append("")
        func phaseTable(_ title: String, _ phases: [BenchReport.PhaseSummary]) {
            lines.append("\(title) (ms since process start)")
            lines.append("  " + "phase".padding(toLength: 26, withPad: " ", startingAt: 0) + "median".leftPadded(12, with: " ") + "p10".leftPadded(12, with: " ") + "p90".leftPadded(12, with: " "))
            for phase in phases {
                lines.append("  " + phase.phase.padding(toLength: 26, withPad: " ", startingAt: 0)
                             + String(format: "%.1f", phase.median).leftPadded(12, with: " ") + String(format: "%.1f", phase.p10).leftPadded(12, with: " ")
                             + String(format: "%.1f", phase.p90).leftPadded(12, with: " "))
            }
            lines.append("")
        }
        phaseTable("microVM (skiff run --no-snapshot: a cold boot)", report.vmPhases)
        phaseTable("microVM from the ready snapshot (skiff run)", report.snapshotPhases)
        phaseTable("container (\(report.runtime) create + start)", report.containerPhases)
        let widths = [46, 16, 16]
        lines.append("measure".padding(toLength: widths[0], withPad: " ", startingAt: 0) + "microVM".leftPadded(widths[1], with: " ") + "container".leftPadded(widths[2], with: " "))
        for row in report.classic {
            lines.append(row.measure.padding(toLength: widths[0], withPad: " ", startingAt: 0) + row.vm.leftPadded(widths[1], with: " ")
                         + row.container.leftPadded(widths[2], with: " ") + "   " + row.note)
        }
        lines.append("")
        var peer = "peer: \(report.peer.name): \(report.peer.outcome)"
        if let first = report.peer.firstOutputMs { peer += "; first console byte \(ms(first))" }
        if let skiff = report.peer.skiffFirstInstructionMs { peer += "; skiff: process start → first guest instruction \(ms(skiff))" }
        lines.append(peer)
        return lines.joined(separator: "\n")
    }

    /// Stacked horizontal bars: each phase's median as a segment, VM above container.
    public static func svg(_ report: BenchReport) -> String {
        let width = 900.0, left = 190.0, barHeight = 34.0
        let bars: [(String, [BenchReport.PhaseSummary])] = [
            ("microVM, cold boot", report.vmPhases), ("microVM from snapshot", report.snapshotPhases),
            ("container (\(report.runtime))", report.containerPhases),
        ]
        let maximum = max(bars.flatMap { $0.1.map(\.median) }.filter { !$0.isNaN }.max() ?? 1, 0.001)
        let scale = (width - left - 30) / maximum
        let colors = ["steelblue", "darkorange", "indianred", "cadetblue", "seagreen", "goldenrod", "orchid", "lightpink"]
        var body: [String] = []
        var legendY = 40.0 + Double(bars.count) * (barHeight + 26) + 20
        for (row, (label, phases)) in bars.enumerated() {
            let y = 40.0 + Double(row) * (barHeight + 26)
            body.append(#"<text x="10" y="\#(y + barHeight / 2 + 5)" font-size="14">\#(escape(label))</text>"#)
            var previous = 0.0
            for (index, phase) in phases.enumerated() where !phase.median.isNaN {
                let start = max(previous, 0), end = max(phase.median, start)
                body.append(#"<rect x="\#(left + start * scale)" y="\#(y)" width="\#(max((end - start) * scale, 0.5))" height="\#(barHeight)" fill="\#(colors[index % colors.count])"><title>\#(escape(phase.phase)): \#(String(format: "%.1f", phase.median)) ms</title></rect>"#)
                previous = end
            }
            body.append(#"<text x="\#(left + previous * scale + 4)" y="\#(y + barHeight + 16)" font-size="12">\#(String(format: "%.1f ms", previous))</text>"#)
        }
        for (label, phases) in bars {
            body.append(#"<text x="10" y="\#(legendY)" font-size="12" font-weight="bold">\#(escape(label)):</text>"#)
            var x = left
            for (index, phase) in phases.enumerated() {
                body.append(#"<rect x="\#(x)" y="\#(legendY - 10)" width="12" height="12" fill="\#(colors[index % colors.count])"/>"#)
                body.append(#"<text x="\#(x + 16)" y="\#(legendY)" font-size="12">\#(escape(phase.phase))</text>"#)
                x += 30 + Double(phase.phase.count) * 7
            }
            legendY += 22
        }
        let title = "Startup phases, median of \(report.runs) runs (ms since process start) — \(report.host.kind), \(report.date)"
        let warningLines = report.warnings.enumerated().map { index, warning in
            #"<text x="10" y="\#(legendY + 10 + Double(index) * 16)" font-size="11" fill="darkred">\#(escape(warning))</text>"#
        }
        let height = legendY + 20 + Double(report.warnings.count) * 16
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif">
            <rect width="100%" height="100%" fill="white"/>
            <text x="10" y="20" font-size="14">\(escape(title))</text>
            \((body + warningLines).joined(separator: "\n"))
            </svg>

            """
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
