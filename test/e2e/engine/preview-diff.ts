// Reads the resource steps out of `pulumi preview --diff` text, so a test can say which resources a
// change touches. Each resource there starts with a header and its URN on a line of its own:
//
//     +-pulumi-nodejs:dynamic/ssh:Command: (replace)
//         [id=31d5b3477a99f390]
//         [urn=urn:pulumi:local::slotshift::slotshift:release:Release$pulumi-nodejs:dynamic/ssh:Command::shop-release-prepare]
//
// and the summary counts at the end ("+-2 to replace", "10 unchanged").

export interface PreviewStep {
    /** The word in parentheses: same, create, update, replace, delete, create-replacement, ... */
    op: string;
    type: string;
    urn: string;
    /** The last URN segment: the resource's name. */
    name: string;
    /** The parent chain's types, outermost first (from the URN's type part). */
    parents: string[];
}

export interface PreviewSummary {
    steps: PreviewStep[];
    /** "to replace" -> 2, "unchanged" -> 10, ... */
    counts: Record<string, number>;
}

const HEADER = /^\s*(?:\+-|\+\+|--|\+|-|~|<=|=>|>)?\s*([A-Za-z0-9_.:/-]+): \(([a-z-]+)\)\s*$/;
const URN = /^\s*\[urn=(urn:pulumi:[^\]]+)\]\s*$/;
const COUNT = /^\s*(?:\+-|\+\+|--|\+|-|~)?\s*(\d+) (to create|to update|to replace|to delete|unchanged|to import|to discard)\s*$/;

export function parsePreviewDiff(text: string): PreviewSummary {
    const steps: PreviewStep[] = [];
    const counts: Record<string, number> = {};
    let pending: { op: string; type: string } | undefined;
    let inSummary = false;
    for (const line of text.split("\n")) {
        if (/^Resources:\s*$/.test(line)) inSummary = true;
        if (inSummary) {
            const c = COUNT.exec(line);
            if (c) counts[c[2]] = Number(c[1]);
            continue;
        }
        const h = HEADER.exec(line);
        if (h) {
            pending = { op: h[2], type: h[1] };
            continue;
        }
        const u = URN.exec(line);
        if (u && pending) {
            const urn = u[1];
            const typePart = urn.split("::")[2] ?? "";
            const types = typePart.split("$");
            steps.push({ op: pending.op, type: pending.type, urn, name: urn.slice(urn.lastIndexOf("::") + 2), parents: types.slice(0, -1) });
            pending = undefined;
        }
    }
    return { steps, counts };
}

/** The steps that change something (everything but "same"). */
export function changedSteps(p: PreviewSummary): PreviewStep[] {
    return p.steps.filter((s) => s.op !== "same");
}
