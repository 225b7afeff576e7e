// The load of every window: the project's own generator (dev/loopback/load.ts: autocannon, a
// fixed set of keep-alive connections) and vegeta beside it (an open model), each with its share
// of the rate and the same request mix, both through NGINX. Their records are kept apart, so each
// gives its own figures for the same windows: the second one checks the first.
import { ErrorRecord, ResponseRecord, startLoad } from "../dev/loopback/load";
import { startVegeta } from "./vegeta";

export interface Records {
    records: ResponseRecord[];
    errorRecords: ErrorRecord[];
}

export interface MixOptions {
    port: number;
    host: string;
    /** Requests per second, both generators together. */
    rate: number;
    /** The project generator's connections. */
    connections: number;
    postEvery: number;
    versionHeader: string;
    /** vegeta's binary, or undefined for the project's generator alone. */
    vegeta?: string;
    /** vegeta's share of the rate (0..1). */
    crossShare: number;
    /** Where vegeta writes its files. */
    dir: string;
}

export interface RunningMix {
    /** Requests per second each generator sends. */
    rates: { own: number; cross: number };
    /** vegeta's pid (for the process probe). */
    crossPid(): number | undefined;
    stop(): Promise<{ own: Records; cross?: Records }>;
}

export const PATHS = { get: "/", post: "/api/notes" };

/** Each generator's requests per second. */
export function splitRate(o: Pick<MixOptions, "rate" | "vegeta" | "crossShare">): { own: number; cross: number } {
    const cross = o.vegeta ? Math.round(o.rate * o.crossShare) : 0;
    return { own: o.rate - cross, cross };
}

export function startMix(o: MixOptions, runId: string): RunningMix {
    const { own, cross } = splitRate(o);
    const load = startLoad({
        port: o.port,
        host: o.host,
        rate: own,
        connections: o.connections,
        postEvery: o.postEvery,
        runId,
        path: PATHS.get,
        postPath: PATHS.post,
        postBody: (id) => JSON.stringify({ text: id }),
        versionHeader: o.versionHeader,
    });
    const v =
        o.vegeta && cross > 0
            ? startVegeta({
                  bin: o.vegeta,
                  dir: o.dir,
                  port: o.port,
                  host: o.host,
                  rate: cross,
                  postEvery: o.postEvery,
                  path: PATHS.get,
                  postPath: PATHS.post,
                  postBody: JSON.stringify({ text: `${runId}-vegeta` }),
                  versionHeader: o.versionHeader,
              })
            : undefined;
    return {
        rates: { own, cross },
        crossPid: () => v?.pid,
        async stop() {
            const [report, crossRecords] = await Promise.all([load.stop(), v?.stop()]);
            return { own: { records: report.records, errorRecords: report.errorRecords }, ...(crossRecords ? { cross: crossRecords } : {}) };
        },
    };
}
