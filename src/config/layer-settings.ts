import type { OptionSource } from './option-source.js';

/** A setting as the layers gave it: the raw value and where it came from. */
export interface LayeredValue {
  value: unknown;
  source: OptionSource;
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
