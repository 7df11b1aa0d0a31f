import { parse } from 'yaml';
import { ConfigError } from '../core/errors.js';
import { unknownKeyMessage } from './nearest-key.js';
import type { OptionSource } from './option-source.js';

/** A setting as the layers gave it: the raw value and where it came from. */
export interface LayeredValue {
  value: unknown;
  source: OptionSource;
}

/**
 * Parse a config file's text (YAML, or JSON, which is YAML) into a mapping of
 * keys to raw values. Keys are the long flag names without dashes
 * (`cluster-dns: [10.0.0.2]`). Pure; throws `ConfigError` naming the file
 * and, for an unknown key, the nearest valid one.
 */
export function parseConfigFile(text: string, file: string, knownKeys: readonly string[]): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: false });
  } catch (err) {
    throw new ConfigError(`cannot read config file "${file}": ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`cannot read config file "${file}": expected a mapping of settings, got ${Array.isArray(doc) ? 'a list' : typeof doc}`);
  }
  for (const key of Object.keys(doc)) {
    if (!knownKeys.includes(key)) {
      throw new ConfigError(unknownKeyMessage(key, `config file "${file}"`, knownKeys));
    }
  }
  return doc as Record<string, unknown>;
}

/**
 * The keys a config file may hold: the long names of a command's options
 * (`--connect-timeout` → `connect-timeout`), so a new flag is a new key at
 * once. `--config` itself, `--help` and `--version` are not settings.
 */
export function configFileKeys(longFlags: readonly (string | undefined)[]): string[] {
  // `--no-x` sets the attribute of `--x`: its key is `x: false`.
  const keys = longFlags.flatMap((flag) => (flag === undefined ? [] : [flag.replace(/^--(no-)?/, '')]));
  return [...new Set(keys)].filter((key) => !['config', 'help', 'version'].includes(key));
}

/**
 * Merge the layers for each key: flags and environment (as commander saw
 * them) win over the config file, which wins over defaults (docs/architecture.md §3).
 */
export function layerSettings(
  fromCommand: Record<string, unknown>,
  sources: Record<string, OptionSource>,
  fromFile: Record<string, unknown>,
  file: string | undefined,
  keyOf: (attribute: string) => string,
): Record<string, LayeredValue> {
  const layered: Record<string, LayeredValue> = {};
  for (const [attribute, source] of Object.entries(sources)) {
    const key = keyOf(attribute);
    const given = source.from === 'cli' || source.from === 'env';
    if (!given && key in fromFile && file !== undefined) {
      layered[attribute] = { value: fromFile[key], source: { ...source, from: 'config', file } };
    } else if (fromCommand[attribute] !== undefined) {
      layered[attribute] = { value: fromCommand[attribute], source };
    }
  }
  return layered;
}
