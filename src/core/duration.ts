import { ConfigError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parse a duration such as `500ms`, `2s`, `1.5m`, `1h` into milliseconds. A
 * bare number means seconds; at most `MAX_TIMER_MS` (no timer waits longer).
 * `what` names the setting in the error.
 */
export function parseDuration(value: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new ConfigError(`invalid ${what} "${value}": expected a duration like 500ms, 2s, 1m or a number of seconds`);
  const ms = Math.round(Number(match[1]) * (UNITS[match[2] ?? 's'] as number));
  if (ms > MAX_TIMER_MS) throw new ConfigError(`invalid ${what} "${value}": longer than the longest timer, ${formatDuration(MAX_TIMER_MS)} (about 24 days)`);
  return ms;
}

/** Format milliseconds the way `parseDuration` reads them back: `5m`, `1.5s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** The longest delay Node's timers accept (a signed 32-bit number of ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
