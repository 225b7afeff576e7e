// A command's output as it arrives: cut into whole lines for the console, and its tail kept for
// the state. Part of the serialized provider: see the rules in provider.ts.

/** A streamed line longer than this is cut (a minified file cat'ed by mistake). */
const LINE_LIMIT = 4000;

/** Keeps the last `limit` characters of a stream, starting at a line, and says what it dropped. */
export function createTail(limit: number): { add(text: string): void; text(): string } {
    let kept = "";
    let dropped = 0;
    return {
        add(text: string) {
            kept += text;
            if (kept.length > 2 * limit) {
                let cut = kept.length - limit;
                const nl = kept.indexOf("\n", cut);
                if (nl >= 0 && nl - cut < 1024) cut = nl + 1;
                dropped += cut;
                kept = kept.slice(cut);
            }
        },
        text() {
            let cut = Math.max(0, kept.length - limit);
            const nl = cut > 0 ? kept.indexOf("\n", cut) : -1;
            if (nl >= 0 && nl - cut < 1024) cut = nl + 1;
            const total = dropped + cut;
            return (total > 0 ? `[... ${total} earlier characters not kept ...]\n` : "") + kept.slice(cut);
        },
    };
}

/**
 * Turns chunks of bytes into whole lines (UTF-8 safe across chunks). A line rewritten with \r
 * (progress bars) shows as its last state. Returns each chunk's decoded text for capture.
 */
export function createLineSplitter(emit: (line: string) => void): { write(chunk: Buffer): string; end(): string } {
    const { StringDecoder } = require("string_decoder") as typeof import("string_decoder");
    const decoder = new StringDecoder("utf8");
    let partial = "";
    const out = (raw: string) => {
        const parts = raw.split("\r").filter((p) => p.length > 0);
        const line = parts.length > 0 ? parts[parts.length - 1] : "";
        if (line.trim().length === 0) return;
        emit(line.length > LINE_LIMIT ? `${line.slice(0, LINE_LIMIT)} [... line cut]` : line);
    };
    const feed = (text: string) => {
        partial += text;
        let nl: number;
        while ((nl = partial.indexOf("\n")) >= 0) {
            out(partial.slice(0, nl));
            partial = partial.slice(nl + 1);
        }
        // A very long line with no newline yet is flushed in pieces, so memory stays bounded.
        if (partial.length > 4 * LINE_LIMIT) {
            out(partial);
            partial = "";
        }
        return text;
    };
    return {
        write: (chunk) => feed(decoder.write(chunk)),
        end() {
            const text = feed(decoder.end());
            if (partial.length > 0) out(partial);
            partial = "";
            return text;
        },
    };
}
