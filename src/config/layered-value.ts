import { ConfigError } from '../core/errors.js';
import { parseDuration } from '../core/duration.js';
import type { LayeredValue } from './layer-settings.js';
import { describeSource } from './option-source.js';

// Readers of one layered setting: each takes the value as a flag, a variable or a config
// file gave it, and names where it came from (`--x`, `SRVLINK_X (for --x)`, `key "x" in f.yaml`) when it is wrong.

/** A repeatable setting as a list: repeated flags, comma-separated text, or a YAML list. */
export function readList(layered: LayeredValue): string[] {
  const { value } = layered;
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((item) => {
    if (typeof item !== 'string' && typeof item !== 'number') throw invalidValue(layered, 'expected text or a list of text');
    return String(item).split(',');
  }).map((v) => v.trim()).filter((v) => v !== '');
}

/** A duration (`500ms`, `2s`, `5m`; a number from a config file as `parseDuration` reads its text); `off` or false → 0. */
export function readDuration(layered: LayeredValue): number {
  const { value } = layered;
  if (value === 'off' || value === false) return 0;
  if (typeof value === 'number') return parseDuration(String(value), describeSource(layered.source));
  if (typeof value !== 'string') throw invalidValue(layered, 'expected a duration like 500ms, 2s, 5m');
  return parseDuration(value, describeSource(layered.source));
}

/** A whole number from `min` to `max`. */
export function readInteger(layered: LayeredValue, min: number, max: number): number {
  const text = String(layered.value).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw invalidValue(layered, `expected a whole number from ${min} to ${max}`);
  return n;
}

/** One of `choices`, as typed (trimmed, lower case). */
export function readOneOf<T extends string>(layered: LayeredValue, choices: readonly T[]): T {
  const text = String(layered.value).trim().toLowerCase();
  const found = choices.find((choice) => choice === text);
  if (found === undefined) throw invalidValue(layered, `expected ${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1] ?? ''}`);
  return found;
}

/** The `ConfigError` for a value that is not `expected`, naming where it came from and what it was. */
export function invalidValue(layered: LayeredValue, expected: string): ConfigError {
  const shown = typeof layered.value === 'string' ? layered.value : JSON.stringify(layered.value);
  return new ConfigError(`invalid ${describeSource(layered.source)} "${shown}": ${expected}`);
}

/** true/false, 1/0, or missing (false). */
export function readBoolean(layered: LayeredValue): boolean {
  const { value } = layered;
  if (value === undefined || value === false || value === 'false' || value === '0' || value === '') return false;
  if (value === true || value === 'true' || value === '1') return true;
  throw invalidValue(layered, 'expected true or false');
}
