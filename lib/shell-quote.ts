// POSIX shell quoting: the one place a command line is quoted, for the program (commands sent over
// SSH), the templates (setup script), the agent (commands it hands to `sh -c`) and the tests.
// No npm dependency: the agent bundles it.

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** A single-quoted word: nothing inside is expanded. Always quoted, even when it need not be. */
export function shellQuoteAlways(word: string): string {
    return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A POSIX shell word; plain words stay bare so command lines remain readable in previews. */
export function shellQuote(word: string): string {
    return SAFE_WORD.test(word) ? word : shellQuoteAlways(word);
}

/** argv as one command line for `sh -c`. */
export function shellJoin(argv: readonly string[]): string {
    return argv.map(shellQuote).join(" ");
}

/** Text for inside a double-quoted shell string: \ " $ ` escaped, so nothing in it expands or ends the string. */
export function shellDoubleQuoted(text: string): string {
    return text.replace(/[\\"$`]/g, "\\$&");
}
