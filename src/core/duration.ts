import { ConfigError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parse a duration such as `500ms`, `2s`, `1.5m`, `1h` into milliseconds. A
 * bare number means seconds. `what` names the setting in the error.
 */
export function parseDuration(value: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new ConfigError(`invalid ${what} "${value}": expected a duration like 500ms, 2s, 1m or a number of seconds`);
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? 's'] as number));
}
