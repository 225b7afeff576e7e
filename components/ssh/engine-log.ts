// Streaming a step's lines to the Pulumi console, under the resource they belong to. Part of the
// serialized provider: see the rules in provider.ts.

/** The engine's address: the dynamic provider process gets it as its last argument. */
export function engineAddress(argv: readonly string[]): string | undefined {
    const last = argv.length > 2 ? argv[argv.length - 1] : undefined;
    return last && /^[A-Za-z0-9.\-[\]:]+:\d+$/.test(last) ? last : undefined;
}

export interface LineLog {
    write(line: string): void;
    close(): Promise<void>;
}

/**
 * Streams lines to the Pulumi console under the resource. `pulumi.log` cannot do that from a
 * dynamic provider: the SDK never connects it to the engine there, so it falls back to
 * console.log, which the engine shows as the Stack's output with an "info: [runtime]" prefix.
 * Instead this calls the engine's Log RPC itself, with the URN the resource passed in. Without an
 * engine (or if the RPC fails) lines go to this process's stderr, which the engine also shows.
 */
export function engineLogger(urn: string | undefined, argv: readonly string[] = process.argv): LineLog {
    const label = urn ? urn.slice(urn.lastIndexOf("::") + 2) : "ssh";
    const fallback = (line: string) => {
        process.stderr.write(`${label}: ${line}\n`);
    };
    const addr = engineAddress(argv);
    let client: any;
    let proto: any;
    if (urn && addr) {
        try {
            const path = require("path") as typeof import("path");
            const sdkDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
            const grpc = require(require.resolve("@grpc/grpc-js", { paths: [sdkDir] }));
            const engineRpc = require("@pulumi/pulumi/proto/engine_grpc_pb");
            proto = require("@pulumi/pulumi/proto/engine_pb");
            client = new engineRpc.EngineClient(addr, grpc.credentials.createInsecure());
        } catch {
            client = undefined;
        }
    }
    if (!client) return { write: fallback, close: async () => undefined };
    let chain: Promise<void> = Promise.resolve();
    let broken = false;
    const send = (line: string) =>
        new Promise<void>((resolve) => {
            if (broken) {
                fallback(line);
                return resolve();
            }
            const req = new proto.LogRequest();
            req.setSeverity(proto.LogSeverity.INFO);
            req.setMessage(line);
            req.setUrn(urn);
            client.log(req, (err: unknown) => {
                if (err) {
                    broken = true;
                    fallback(line);
                }
                resolve();
            });
        });
    return {
        write(line: string) {
            // One at a time, so lines keep their order.
            chain = chain.then(() => send(line));
        },
        async close() {
            await chain;
            client.close();
        },
    };
}
