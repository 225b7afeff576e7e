// The "Diagnostics:" section `pulumi up` prints at its end: every line a resource logged, once
// each, in order, under a "  <type> (<name>):" header (the progress rows above it repeat a
// resource's last line at each of its state changes, so they cannot be counted).

/** The lines `resource` (its name) logged during the run, without their indentation and trailing blanks. */
export function diagnosticLines(out: string, resource: string): string[] {
    const lines = out.split("\n");
    const start = lines.findIndex((l, i) => /^Diagnostics:$/.test(l) && lines.slice(i + 1).some((h) => h.endsWith(` (${resource}):`)));
    if (start < 0) return [];
    const header = lines.findIndex((l, i) => i > start && /^ {2}\S/.test(l) && l.endsWith(` (${resource}):`));
    const found: string[] = [];
    for (const line of lines.slice(header + 1)) {
        if (!line.startsWith("    ")) break;
        found.push(line.slice(4).trimEnd());
    }
    return found;
}
