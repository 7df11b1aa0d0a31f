/** What one fault scenario did: the figures of its summary line. */
export interface ScenarioSummary {
  /** The scenario (and part), e.g. `floods max-conns` or `dns-abuse random-packets (stub)`. */
  scenario: string;
  /** Connections (or exchanges) the scenario made against srvlink. */
  connections: number;
  /** Bytes (or answers' bytes) checked to be exactly what they should be. */
  bytesVerified: number;
  /** Connections or answers that went missing, were corrupted or ended in a way no client could tell from success. Must be 0. */
  lost: number;
  /** Figures particular to the scenario, after a `;`. */
  extra?: string;
}

/** `<scenario>: N connections, N bytes verified, N lost[; extra]`: the same shape for every scenario, so a run's lines can be read side by side (or grepped). */
export function formatScenarioSummary(summary: ScenarioSummary): string {
  const line = `${summary.scenario}: ${summary.connections} connections, ${summary.bytesVerified} bytes verified, ${summary.lost} lost`;
  return summary.extra === undefined || summary.extra === '' ? line : `${line}; ${summary.extra}`;
}

/**
 * Print a scenario's summary line (vitest shows it under the test, pass or
 * fail) and return the summary. Call it before asserting, so a failing run
 * still says what it saw; the caller asserts `lost === 0`.
 */
export function reportScenario(summary: ScenarioSummary): ScenarioSummary {
  console.log(formatScenarioSummary(summary));
  return summary;
}
