// One local host for the whole end-to-end run, shared by every test file: booted fresh (destroy +
// start from the cached image) before the first suite that needs it, stopped after the last.
//   SLOTSHIFT_E2E_REUSE_HOST=1  keep the existing host rootfs (faster; state from earlier runs stays)
//   SLOTSHIFT_E2E_KEEP_HOST=1   leave the host running afterwards (inspect it: scripts/local-host.sh ssh)
//   SLOTSHIFT_E2E_REQUIRED=1    fail instead of skipping when this machine cannot run the tests
//   SLOTSHIFT_E2E_VERBOSE=1     show local-host.sh output as it runs
import { LocalHost, missingPrerequisite } from "../../dev/local-host";

const host = new LocalHost();
let booting: Promise<void> | undefined;

function bootOnce(): Promise<void> {
    booting ??= (async () => {
        if (process.env.SLOTSHIFT_E2E_REUSE_HOST !== "1") await host.destroy();
        await host.start();
    })();
    return booting;
}

/** Call inside a describe(): skips the suite when the machine cannot run it, else boots the host. */
export function useLocalHost(): LocalHost {
    before(async function () {
        const why = missingPrerequisite();
        if (why) {
            if (process.env.SLOTSHIFT_E2E_REQUIRED === "1") throw new Error(why);
            console.warn(`    (skipped: ${why})`);
            this.skip();
        }
        // A first run builds the cached image (a few minutes); later ones copy it (under a minute).
        this.timeout(25 * 60_000);
        await bootOnce();
    });
    return host;
}

// Loaded while mocha reads the test files, so this is a root hook: it runs once, after all files.
after(async function () {
    if (!booting) return;
    this.timeout(5 * 60_000);
    await booting.catch(() => undefined);
    if (process.env.SLOTSHIFT_E2E_KEEP_HOST === "1") {
        console.warn(`    local host left running (state dir ${host.stateDir})`);
        return;
    }
    await host.stop();
});
