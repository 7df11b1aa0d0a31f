import { ConfigError } from '../core/errors.js';
import type { LayeredValue } from './layer-settings.js';
import { unknownKeyMessage } from './nearest-key.js';
import { describeSource } from './option-source.js';
import { REGISTER_SPEC_KEYS, parseRegisterSpec, type RegisterSpec } from './register-config.js';

/** Keys of a structured `check:` in a config file's registration. */
const CHECK_KEYS = ['target', 'send', 'expect', 'interval', 'timeout', 'rise', 'fall'] as const;

/** `checkInterval` → `check-interval`. */
function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const ENTRY_KEYS = ['service', 'port', ...REGISTER_SPEC_KEYS.map(kebab)];

/**
 * `--register` values (pure): `NAME:PORT[:key=value...]` strings (comma
 * lists from the environment), or in a config file objects with the same
 * keys, the health check either a string or `{target, send, expect,
 * interval, timeout, rise, fall}`:
 *
 * ```yaml
 * register:
 *   - service: web
 *     port: $PORT0
 *     check: {target: "http://127.0.0.1:8080/health", interval: 5s, rise: 2}
 * ```
 *
 * Unknown keys are refused with the nearest valid one.
 */
export function registerEntries(layered: LayeredValue): RegisterSpec[] {
  const { value, source } = layered;
  const what = describeSource(source);
  const items: unknown[] = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return items.flatMap((item, index): RegisterSpec[] => {
    if (typeof item === 'string' || typeof item === 'number') {
      return (source.from === 'env' ? String(item).split(',') : [String(item)]).map((text) => parseRegisterSpec(text.trim(), what));
    }
    const where = `${what}, entry ${index + 1}`;
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new ConfigError(`invalid ${where}: expected "NAME:PORT[:key=value...]" or {service: NAME, port: PORT, check: ...}`);
    }
    const spec: RegisterSpec = {};
    for (const [key, raw] of Object.entries(item as Record<string, unknown>)) {
      if (!ENTRY_KEYS.includes(key)) throw new ConfigError(unknownKeyMessage(key, where, ENTRY_KEYS));
      if (key === 'check' && raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
        Object.assign(spec, checkSpec(raw as Record<string, unknown>, `${where}, check`));
        continue;
      }
      const field = key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof RegisterSpec;
      spec[field] = scalar(raw, `${where}, ${key}`);
    }
    return [spec];
  });
}

function checkSpec(check: Record<string, unknown>, where: string): RegisterSpec {
  const spec: RegisterSpec = {};
  for (const [key, raw] of Object.entries(check)) {
    if (!(CHECK_KEYS as readonly string[]).includes(key)) throw new ConfigError(unknownKeyMessage(key, where, CHECK_KEYS));
    const text = scalar(raw, `${where}, ${key}`);
    if (key === 'target') spec.check = text;
    else if (key === 'send') spec.checkSend = text;
    else if (key === 'expect') spec.checkExpect = text;
    else if (key === 'interval') spec.checkInterval = text;
    else if (key === 'timeout') spec.checkTimeout = text;
    else if (key === 'rise') spec.rise = text;
    else spec.fall = text;
  }
  if (spec.check === undefined) throw new ConfigError(`missing ${where}, target: what to check, e.g. tcp://127.0.0.1:8080`);
  return spec;
}

function scalar(raw: unknown, where: string): string {
  if (typeof raw === 'string' || typeof raw === 'number') return String(raw);
  throw new ConfigError(`invalid ${where} ${JSON.stringify(raw)}: expected text or a number`);
}
