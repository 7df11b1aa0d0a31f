import { parse } from 'yaml';
import { ConfigError } from '../core/errors.js';
import { settingsDocument } from './json-config-file.js';

// The layering needs no YAML parser: it lives apart, so a run without --config never loads one.
export { configFileKeys, layerSettings, type LayeredValue } from './layer-settings.js';

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
  return settingsDocument(doc, file, knownKeys);
}
