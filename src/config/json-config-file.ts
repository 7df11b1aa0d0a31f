import { ConfigError } from '../core/errors.js';
import { unknownKeyMessage } from './nearest-key.js';

/**
 * Parse a config file that is plain JSON, without the YAML parser (which
 * costs a process several MB and ~100 ms to load): the same mapping of keys
 * to raw values `parseConfigFile` makes of it, since JSON is YAML. Returns
 * undefined for anything else, YAML or broken JSON, and for JSON with a key
 * twice in one object (which YAML refuses): `parseConfigFile` reads those
 * and words the error, as before. Throws `ConfigError` as `parseConfigFile`
 * does for a document that is no mapping and for an unknown key.
 */
export function parseJsonConfigFile(text: string, file: string, knownKeys: readonly string[]): Record<string, unknown> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (hasDuplicateKeys(text)) return undefined;
  return settingsDocument(doc, file, knownKeys);
}

/**
 * A parsed config file as settings: null (an empty file) is none; anything
 * but a mapping, or a key that is no setting, is a `ConfigError` naming the
 * file and, for the key, the nearest valid one.
 */
export function settingsDocument(doc: unknown, file: string, knownKeys: readonly string[]): Record<string, unknown> {
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

/** Whether an object of `text`, valid JSON, has a key twice (JSON.parse keeps the last one silently). */
function hasDuplicateKeys(text: string): boolean {
  // One entry per open object (its keys so far) or array (undefined).
  const open: (Set<string> | undefined)[] = [];
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') {
      open.push(new Set());
      keyNext = true;
    } else if (c === '[') {
      open.push(undefined);
      keyNext = false;
    } else if (c === '}' || c === ']') {
      open.pop();
      keyNext = false;
    } else if (c === ',') {
      keyNext = open[open.length - 1] !== undefined;
    } else if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const keys = open[open.length - 1];
      if (keyNext && keys) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (keys.has(key)) return true;
        keys.add(key);
        keyNext = false;
      }
      i = end;
    }
  }
  return false;
}
