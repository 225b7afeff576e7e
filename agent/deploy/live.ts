// Which release is live is recorded in three places besides HAProxy's weights: slots.json (with
// the previous release, the rollback target), `current` (the Capistrano link) and NGINX's backup
// upstream (the live slot, NGINX's way around HAProxy). They change here only: a deploy's commit,
// a warm rollback (the agent's own or the one the rollback script flipped), and the recovery of an
// interrupted deploy all go through commitLive or restoreCommitted, in the same order.
import * as fs from "fs";
import * as path from "path";
import { releaseDir, Slot } from "../../lib/host-layout";
import { LIVE_SLOT_PORT_PLACEHOLDER } from "../../lib/contract/agent-json";
import { AgentContext } from "../context";
import { errorMessage } from "../common/errors";
import { symlinkAtomic, writeFileAtomic } from "../common/fs-atomic";
import { runChecked } from "../common/run-command";
import { isPreviousWarm, SlotsState, writeSlotsState } from "../state/slots-file";
import { slotPort } from "./slot-launch";
import { slotTarget } from "./slot-lifecycle";

/**
 * `live` becomes the live slot and `previous` (the slot that was live) the rollback target:
 * slots.json first (the deploy record cleared), then `current`, then NGINX's backup upstream.
 */
export async function commitLive(ctx: AgentContext, state: SlotsState, live: Slot, previous: Slot | null): Promise<void> {
    const version = state.slots[live].version;
    if (!version) throw new Error(`slot ${live} has no release to make live`);
    const prevInfo = previous ? state.slots[previous] : undefined;
    state.live = live;
    if (previous && prevInfo?.version) state.previous = { slot: previous, version: prevInfo.version, activation: prevInfo.activation };
    state.deploying = null;
    writeSlotsState(ctx.layout, state);
    swapCurrent(ctx, version);
    ctx.log.info(`live: ${live} (${version}); current -> releases/${version}`);
    await pointNginxAtLive(ctx, state, live);
}

/**
 * The previous release is warm: slots.json records its slot as running it, and the slot's link
 * still points at it. Whether HAProxy passes it is the caller's second question.
 */
export function previousIsWarm(ctx: AgentContext, state: SlotsState): boolean {
    const prev = state.previous;
    return !!prev && isPreviousWarm(state) && slotTarget(ctx, prev.slot) === prev.version;
}

/** `current` and NGINX's backup upstream back on the committed live slot (recovery; slots.json is the caller's). */
export async function restoreCommitted(ctx: AgentContext, state: SlotsState): Promise<void> {
    if (!state.live) return;
    const version = state.slots[state.live].version;
    if (version) swapCurrent(ctx, version);
    await pointNginxAtLive(ctx, state, state.live);
}

/** current -> releases/<version>, swapped atomically (symlink to a temp name, rename over). */
function swapCurrent(ctx: AgentContext, version: string): void {
    const target = path.relative(path.dirname(ctx.layout.currentLink), releaseDir(ctx.layout, version));
    symlinkAtomic(target, ctx.layout.currentLink);
}

/**
 * NGINX's backup upstream -> the live slot on the port it was started on (layout.nginxLiveSlotFile),
 * then a graceful NGINX reload, only when the file changes. Never fails the caller: traffic through
 * HAProxy is unaffected; the next commit or recovery writes it again.
 */
async function pointNginxAtLive(ctx: AgentContext, state: SlotsState, live: Slot): Promise<void> {
    const nginx = ctx.settings.nginx;
    if (!nginx) return;
    const file = ctx.layout.nginxLiveSlotFile;
    const port = slotPort(ctx, state, live);
    const content = nginx.liveSlotConf.split(LIVE_SLOT_PORT_PLACEHOLDER).join(String(port));
    try {
        let current: string | undefined;
        try {
            current = fs.readFileSync(file, "utf8");
        } catch {
            current = undefined;
        }
        if (current === content) return;
        writeFileAtomic(file, content, { mode: 0o644 });
        await runChecked("nginx reload", nginx.reloadCommand, { log: ctx.log, timeoutMs: 60_000 });
        ctx.log.info(`NGINX's way around HAProxy now leads to ${live} (port ${port})`);
    } catch (e) {
        ctx.log.warn(`could not point NGINX's backup upstream at ${live}: ${errorMessage(e)}; it is written again at the next commit or recovery`);
    }
}
