// Percentiles of measured figures (response times), nearest rank: the value below which p % of
// them fall. One definition for the agent's deploy figures, the benchmark and the load generators.

/** The p-th percentile (0..100) of values sorted ascending; 0 for none. */
export function percentile(sorted: readonly number[], p: number): number {
    if (sorted.length === 0) return 0;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
