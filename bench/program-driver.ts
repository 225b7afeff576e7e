// The deployer's side of a gated deploy (program-steps.ts: the SSH client, the uploads, following
// the worker) in a process of its own at nice 19. On a real deploy that side runs on the
// deployer's machine; here it shares the two cores with the host, so it gets only what the host
// leaves, and it never holds up the project's load generator, which runs in the benchmark's own
// event loop. The benchmark talks to it over Node's IPC channel.
import { fork, ChildProcess } from "child_process";
import * as os from "os";
import { deployVersion, ProgramTarget, rollBack, TimedLine } from "./program-steps";

type RequestBody = { op: "deploy"; release: Parameters<typeof deployVersion>[1] } | { op: "rollback" };
type Request = RequestBody & { id: number };
type Reply = { type: "ready" } | { type: "line"; id: number; line: TimedLine } | { type: "done"; id: number; result?: unknown; error?: string };

/** Lowest CPU priority there is: the deployer's machine is not this one. */
const DRIVER_NICE = 19;

export interface ProgramDriver {
    pid: number;
    deploy(release: Parameters<typeof deployVersion>[1], onLine: (l: TimedLine) => void): Promise<void>;
    rollback(onLine: (l: TimedLine) => void): Promise<{ mode?: string }>;
    stop(): Promise<void>;
}

export async function startProgramDriver(target: ProgramTarget): Promise<ProgramDriver> {
    const child: ChildProcess = fork(__filename, [], { execArgv: ["-r", "ts-node/register/transpile-only"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    os.setPriority(child.pid!, DRIVER_NICE);
    const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onLine: (l: TimedLine) => void }>();
    let next = 0;
    const exited = new Promise<void>((resolve) =>
        child.once("exit", (code) => {
            for (const p of pending.values()) p.reject(new Error(`the program driver exited (${code})`));
            resolve();
        }),
    );
    await new Promise<void>((resolve, reject) => {
        child.once("error", reject);
        child.on("message", (m: Reply) => {
            if (m.type === "ready") {
                resolve();
                return;
            }
            const p = pending.get(m.id);
            if (!p) return;
            if (m.type === "line") {
                p.onLine(m.line);
                return;
            }
            pending.delete(m.id);
            if (m.error) p.reject(new Error(m.error));
            else p.resolve(m.result);
        });
        child.send({ target });
    });
    const call = <T>(req: RequestBody, onLine: (l: TimedLine) => void) =>
        new Promise<T>((resolve, reject) => {
            const id = ++next;
            pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onLine });
            child.send({ ...req, id });
        });
    return {
        pid: child.pid!,
        deploy: (release, onLine) => call<void>({ op: "deploy", release }, onLine),
        rollback: (onLine) => call<{ mode?: string }>({ op: "rollback" }, onLine),
        async stop() {
            if (child.exitCode === null) child.disconnect();
            await exited;
        },
    };
}

// The child: the first message is the target, every later one a request.
if (require.main === module) {
    let target: ProgramTarget | undefined;
    const send = (m: Reply) => process.send?.(m);
    process.on("message", (m: { target: ProgramTarget } | Request) => {
        if ("target" in m) {
            target = m.target;
            send({ type: "ready" });
            return;
        }
        const onLine = (line: TimedLine) => send({ type: "line", id: m.id, line });
        const work = m.op === "deploy" ? deployVersion(target!, m.release, onLine) : rollBack(target!, onLine);
        work.then(
            (result) => send({ type: "done", id: m.id, result }),
            (e: Error) => send({ type: "done", id: m.id, error: e.message }),
        );
    });
    // Exits when the benchmark disconnects.
    process.on("disconnect", () => process.exit(0));
}
