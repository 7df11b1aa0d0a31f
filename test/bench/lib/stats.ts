/** Median with the range of a few rounds, and the ratios between two of them. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly rounds: number;
}

/** Median (the mean of the two middle values for an even count), min and max of `values`; NaN when empty. */
export function summarize(values: readonly number[]): Summary {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, rounds: 0 };
  const mid = finite.length >> 1;
  const median = finite.length % 2 === 1 ? (finite[mid] as number) : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
  return { median, min: finite[0] as number, max: finite[finite.length - 1] as number, rounds: finite.length };
}

/** A value with a sensible number of significant digits: 13.4, 0.42, 2,031, 98.1k. */
export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  if (abs >= 100_000) return `${(value / 1000).toFixed(0)}k`;
  if (abs >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs === 0) return '0';
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)));
  return value.toFixed(Math.min(decimals, 4));
}

/** "13.4 (12.9–14.0)": the median and the range of the rounds (the range left out for one round). */
export function formatSummary(summary: Summary, digits = 3): string {
  if (summary.rounds === 0) return '–';
  if (summary.rounds === 1 || summary.min === summary.max) return formatNumber(summary.median, digits);
  return `${formatNumber(summary.median, digits)} (${formatNumber(summary.min, digits)}–${formatNumber(summary.max, digits)})`;
}

/** `a / b` of the medians as "0.42×"; "–" when either is missing. */
export function formatRatio(a: Summary, b: Summary): string {
  const ratio = a.median / b.median;
  if (!Number.isFinite(ratio) || a.rounds === 0 || b.rounds === 0) return '–';
  return `${ratio.toFixed(ratio >= 10 ? 1 : 2)}×`;
}

/** Ratio of the medians as a number (NaN when either is missing). */
export function ratioOf(a: Summary, b: Summary): number {
  return a.rounds === 0 || b.rounds === 0 ? Number.NaN : a.median / b.median;
}
