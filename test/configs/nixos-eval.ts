// Evaluating the rendered NixOS module here, where no nixpkgs tree exists: `nix-instantiate --parse`
// for syntax, and `--eval` with stand-ins for pkgs, lib and config, so the option values the module
// sets can be read as JSON and compared with what Debian gets.
import * as assert from "assert";
import * as path from "path";
import { run, tempDir, writeFile } from "./helpers";

/**
 * The pkgs attributes the module may use. Each exists in the target release (see docs/nixos.md);
 * an attribute outside this list fails the evaluation, as it would on a host where it is missing.
 */
const STUB_PACKAGES = ["nodejs_24", "socat", "haproxy", "openssl", "acl", "coreutils", "diffutils", "gnugrep"];

/** The NixOS release the stand-in config reports unless a test says otherwise. */
export const STUB_RELEASE = "26.05";

// Packages become fake store paths; a file built with writeShellScript (writeText) keeps its text
// between <<< and >>> (<<T< and >T>>) in its "path", so the tests can read and lint it.
const STUBS = `
  let
    pkg = name: "/nix/store/00000000000000000000000000000000-" + name;
    names = ${JSON.stringify(STUB_PACKAGES).replace(/,/g, " ")};
  in {
    lib = {
      escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\\\''" ] (toString s) + "'";
      versionAtLeast = a: b: builtins.compareVersions a b >= 0;
    };
    pkgs = builtins.listToAttrs (map (name: { inherit name; value = pkg name; }) names) // {
      writeShellScript = name: text: pkg name + "<<<" + text + ">>>";
      writeText = name: text: pkg name + "<<T<" + text + ">T>>";
    };
  }
`;

export interface EvaluatedService {
    serviceConfig: Record<string, unknown>;
    unitConfig?: Record<string, unknown>;
    [k: string]: unknown;
}

export interface Evaluated {
    systemd: {
        services: Record<string, EvaluatedService>;
        tmpfiles: { rules: string[] };
    };
    services: Record<string, Record<string, unknown>>;
    security?: { acme?: { acceptTerms: boolean; defaults: { email: string }; certs: Record<string, Record<string, unknown>> } };
    networking: { firewall: { allowedTCPPorts: number[] } };
    users: { users: Record<string, Record<string, unknown>>; groups: Record<string, unknown> };
    environment: { systemPackages: string[] };
    assertions?: { assertion: boolean; message: string }[];
    [k: string]: unknown;
}

export function parseNix(module: string): { status: number | null; stderr: string } {
    const file = writeFile(path.join(tempDir("nix"), "module.nix"), module);
    const r = run("nix-instantiate", ["--parse", file]);
    return { status: r.status, stderr: r.stderr };
}

/** The module's own attribute set (no module system: nothing is merged with nixpkgs' modules). */
export function evaluateModule(module: string, release = STUB_RELEASE): Evaluated {
    const dir = tempDir("nix");
    writeFile(path.join(dir, "module.nix"), module);
    writeFile(path.join(dir, "stubs.nix"), STUBS);
    const config = `{ system.nixos.release = ${JSON.stringify(release)}; }`;
    const expr = `let s = import ${dir}/stubs.nix; in import ${dir}/module.nix { config = ${config}; inherit (s) pkgs lib; }`;
    const r = run("nix-instantiate", ["--eval", "--strict", "--json", "--readonly-mode", "-E", expr]);
    assert.strictEqual(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Evaluated;
}

/** Scripts stored by the writeShellScript stand-in inside a value (writeText files cut out). */
export function embeddedScripts(value: unknown): string[] {
    const json = JSON.stringify(value).replace(/<<T<[\s\S]*?>T>>/g, "");
    return [...json.matchAll(/<<<([\s\S]*?)>>>/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
}

/** Files stored by the writeText stand-in inside a value. */
export function embeddedTexts(value: unknown): string[] {
    return [...JSON.stringify(value).matchAll(/<<T<([\s\S]*?)>T>>/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
}

/** serviceConfig as unit directives: lists repeat the key, booleans are yes/no. */
export function asDirectives(serviceConfig: Record<string, unknown>): string[] {
    const out: string[] = [];
    for (const [k, v] of Object.entries(serviceConfig)) {
        for (const item of Array.isArray(v) ? v : [v]) out.push(`${k}=${typeof item === "boolean" ? (item ? "yes" : "no") : String(item)}`);
    }
    return out.sort();
}
