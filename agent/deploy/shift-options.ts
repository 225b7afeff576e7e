// The options of one shift (activate, or a cold rollback): the shift group of the settings table,
// under its own keys and units. Each comes from the command line, else the last activation's
// (slots.json), else the table's default; keepPreviousWarm falls back to agent.json's instead.
import { GroupSettings, groupRows } from "../../lib/settings/table";
import { LastShift } from "../state/slots-file";

export type ShiftOptions = GroupSettings<"shift">;

export function resolveShiftOptions(req: Partial<ShiftOptions>, keepWarmDefault: boolean, last?: Partial<LastShift>): ShiftOptions {
    const out: Record<string, unknown> = {};
    for (const row of groupRows("shift")) {
        const key = row.key as keyof ShiftOptions;
        const fallback = key === "keepPreviousWarm" ? keepWarmDefault : (last?.[key] ?? structuredClone(row.default));
        out[key] = req[key] ?? fallback;
    }
    return out as ShiftOptions;
}
