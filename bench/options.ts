// The benchmark's command line.
import * as path from "path";

export interface Options {
    runs: number;
    /** Deploy at this rate instead of measuring the capacity first. */
    rate?: number;
    /** The capacity search's first rate. */
    capacityStart: number;
    /** Share of the measured capacity the deploys run at. */
    loadFactor: number;
    connections: number;
    postEvery: number;
    /** vegeta's share of the rate; 0 with --no-cross-check. */
    crossShare: number;
    methods: string[];
    out: string;
    plan: string;
}

const USAGE =
    "usage: npm run bench -- [--runs N | --quick] [--rate R | --capacity-start R] [--load-factor F] [--connections C] [--post-every N] " +
    "[--cross-share S | --no-cross-check] [--methods 1,2,3,4] [--shift-plan 10%:3s,50%:3s,100%] [--out DIR]";

export function usage(message?: string): never {
    if (message) console.error(`bench: ${message}`);
    console.error(USAGE);
    process.exit(2);
}

export function parseArgs(argv: string[], repo: string): Options {
    const o: Options = {
        runs: 3,
        capacityStart: 40,
        loadFactor: 0.7,
        connections: 20,
        postEvery: 5,
        crossShare: 0.5,
        methods: ["1", "2", "3", "4"],
        out: path.join(repo, "docs", "bench"),
        plan: "10%:3s,50%:3s,100%",
    };
    const int = (v: string | undefined, name: string, min: number) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min) usage(`${name} needs an integer >= ${min}, not "${v ?? ""}"`);
        return n;
    };
    const share = (v: string | undefined, name: string, min: number, max: number) => {
        const n = Number(v);
        if (v === undefined || v.trim() === "" || !Number.isFinite(n) || n < min || n > max)
            usage(`${name} needs a number from ${min} to ${max}, not "${v ?? ""}"`);
        return n;
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => argv[++i];
        if (a === "--quick") o.runs = 1;
        else if (a === "--runs") o.runs = int(next(), a, 1);
        else if (a === "--rate") o.rate = int(next(), a, 1);
        else if (a === "--capacity-start") o.capacityStart = int(next(), a, 2);
        else if (a === "--load-factor") o.loadFactor = share(next(), a, 0.05, 1);
        else if (a === "--connections") o.connections = int(next(), a, 1);
        else if (a === "--post-every") o.postEvery = int(next(), a, 0);
        else if (a === "--cross-share") o.crossShare = share(next(), a, 0.05, 0.95);
        else if (a === "--no-cross-check") o.crossShare = 0;
        else if (a === "--methods") o.methods = (next() ?? "").split(",").filter(Boolean);
        else if (a === "--shift-plan") o.plan = next() ?? usage("--shift-plan needs a value");
        else if (a === "--out") o.out = path.resolve(next() ?? usage("--out needs a directory"));
        else if (a === "--help" || a === "-h") usage();
        else usage(`unknown argument ${a}`);
    }
    if (!o.methods.length || o.methods.some((m) => !["1", "2", "3", "4"].includes(m))) usage("--methods takes numbers 1-4, comma separated");
    return o;
}
