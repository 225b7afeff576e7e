// Renders the files under templates/ with nunjucks. Undefined variables are errors, so a template
// can never silently render an empty value into a config file.
import * as crypto from "crypto";
import * as path from "path";
import * as nunjucks from "nunjucks";
import { stagedPath } from "../lib/host-layout";
import { shellDoubleQuoted, shellJoin, shellQuote, shellQuoteAlways } from "../lib/shell-quote";

const TEMPLATES_DIR = path.resolve(__dirname, "..", "templates");

let env: nunjucks.Environment | undefined;

function environment(): nunjucks.Environment {
    if (env) return env;
    env = new nunjucks.Environment(new nunjucks.FileSystemLoader(TEMPLATES_DIR, { noCache: true }), {
        autoescape: false,
        throwOnUndefined: true,
        trimBlocks: true,
        lstripBlocks: true,
    });
    // A Nix string literal: "..." with \, " and ${ escaped.
    env.addFilter("nixString", (v: unknown) => `"${String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$\{/g, "\\${")}"`);
    // A POSIX shell single-quoted word.
    env.addFilter("shellQuote", (v: unknown) => shellQuoteAlways(String(v)));
    // A POSIX shell word, bare when nothing in it needs quoting (command lines stay readable).
    env.addFilter("shellWord", (v: unknown) => shellQuote(String(v)));
    // Text inside a double-quoted shell string ("...{{ v | shellInDoubleQuotes }}..."): nothing expands.
    env.addFilter("shellInDoubleQuotes", (v: unknown) => shellDoubleQuoted(String(v)));
    // A list of words as one shell command line (each a shellWord).
    env.addFilter("shellJoin", (v: unknown) => shellJoin((v as unknown[]).map(String)));
    // Where a file is staged beside its target before it is renamed over it (lib/host-layout.ts).
    env.addFilter("stagedPath", (v: unknown, suffix?: string) => stagedPath(String(v), suffix));
    // The delimiter of a quoted here-document carrying `content`: derived from the content, and
    // never one of its lines.
    env.addFilter("heredocDelimiter", (content: unknown, target: unknown) => {
        const text = String(content);
        const delimiter = `SLOTSHIFT_EOF_${crypto.createHash("sha256").update(text).digest("hex").slice(0, 16)}`;
        if (text.split("\n").includes(delimiter)) throw new Error(`content for ${String(target)} contains its here-document delimiter`);
        return delimiter;
    });
    // A here-document's body: the content without its last line break (the delimiter line follows).
    env.addFilter("heredocBody", (content: unknown) => String(content).replace(/\n$/, ""));
    // A systemd command-line argument: double-quoted, with \, " and specifiers (%) and $ escaped.
    // Line breaks become C escapes (systemd unescapes them), so a value can never start a new line
    // of the unit file.
    env.addFilter(
        "systemdQuote",
        (v: unknown) =>
            `"${String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$").replace(/\n/g, "\\n").replace(/\r/g, "\\r")}"`,
    );
    // A shell command line run by `sh -c` whose first command replaces the shell, so the app is the
    // service's main process and gets its signals (an explicit leading `exec` is kept as is).
    env.addFilter("execCommand", (v: unknown) => (/^\s*exec\s/.test(String(v)) ? String(v) : `exec ${String(v)}`));
    // A YAML double-quoted scalar.
    env.addFilter("yamlString", (v: unknown) => JSON.stringify(String(v)));
    env.addFilter("json", (v: unknown) => JSON.stringify(v));
    // Prose as "# " comment lines of at most 100 columns (unit files, shell scripts).
    env.addFilter("commentLines", (v: unknown) => {
        const lines: string[] = [];
        let line = "#";
        for (const word of String(v).split(/\s+/).filter(Boolean)) {
            if (line.length + 1 + word.length > 100 && line !== "#") {
                lines.push(line);
                line = "#";
            }
            line += ` ${word}`;
        }
        lines.push(line);
        return lines.join("\n");
    });
    return env;
}

/** Renders templates/<name> with the given context. */
export function renderTemplate(name: string, context: object): string {
    return environment().render(name, context);
}

/** Renders template source given here; it may import macros from templates/. */
export function renderTemplateSource(source: string, context: object): string {
    return environment().renderString(source, context);
}
