import { ConfigError } from '../core/errors.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { DEFAULT_SKYDNS_PREFIX } from '../skydns-model/key-path.js';
import { parsePort } from '../core/host-port.js';
import { defaultInstanceId } from '../registry/default-instance-id.js';
import { HEALTH_CHECK_DEFAULTS, parseHealthCheck } from '../registry/health-check.js';
import { expandVars, type Environment } from '../registry/expand-vars.js';
import { registrationKey, registrationKeyProblem } from '../registry/registration-key.js';
import { recordValue, recordValueProblem, type RecordValue } from '../skydns-model/record-value.js';
import { SKYDNS_RECORD_DEFAULTS } from '../skydns-model/skydns-record.js';
import { REGISTRATION_DEFAULTS } from '../registry/registration-defaults.js';

/** One service instance to register, as given (flags of `srvlink register`, or a `--register` spec). */
export interface RegisterSpec {
  service?: string;
  port?: string;
  host?: string;
  priority?: string;
  weight?: string;
  ttl?: string;
  instance?: string;
  check?: string;
  checkSend?: string;
  checkExpect?: string;
  checkInterval?: string;
  checkTimeout?: string;
  rise?: string;
  fall?: string;
}

/** What a registration needs, validated and frozen. */
export interface RegisterConfig {
  readonly key: string;
  readonly value: RecordValue;
  /** Lease TTL in seconds. */
  readonly ttl: number;
  readonly check: string | undefined;
  /** `--check-send` as given (escapes unresolved): a tcp:// check writes it. */
  readonly checkSend: string | undefined;
  /** `--check-expect` as given: a regular expression (tcp://) or statuses (http(s)://). */
  readonly checkExpect: string | undefined;
  readonly checkInterval: number;
  readonly checkTimeout: number;
  readonly rise: number;
  readonly fall: number;
}

/** Where the instance lives and what the machine says about itself: injected, so parsing stays pure. */
export interface RegisterContext {
  domain: string;
  prefix: string;
  env: Environment;
  hostname: string;
  /** The first non-loopback IPv4 address, undefined when there is none; called only when no host is given. */
  defaultHost: () => string | undefined;
  /** How the spec's fields (and the domain) are named in errors: `--port` for flags, `--register "web:80" port` for specs. */
  what: (field: keyof RegisterSpec | 'domain') => string;
}

/**
 * Validate one registration (pure): the key `/skydns/<reversed domain>/_tcp/_<service>/<instance>`,
 * the value `{host, port, priority, weight, ttl}`, and the health check settings.
 * `--host` and `--port` may name environment variables (`$PORT0`).
 */
export function parseRegisterConfig(spec: RegisterSpec, context: RegisterContext): RegisterConfig {
  const { what } = context;
  if (spec.service === undefined || spec.service.trim() === '') throw new ConfigError(`missing ${what('service')}: the service name, e.g. zookeeper`);
  if (spec.port === undefined) throw new ConfigError(`missing ${what('port')}: the port the service listens on (a number or $VAR)`);
  const port = parsePort(expandVars(spec.port, context.env, what('port')), what('port'));
  if (port === 0) throw new ConfigError(`invalid ${what('port')} "${spec.port}": expected 1-65535`);
  const host = spec.host === undefined ? context.defaultHost() : expandVars(spec.host, context.env, what('host'));
  if (host === undefined) {
    throw new ConfigError(`cannot choose a default ${what('host')}: no network interface has a non-loopback IPv4 address; pass ${what('host')}`);
  }
  const integer = (field: keyof RegisterSpec, fallback: number, min: number, max: number): number => {
    const text = spec[field];
    if (text === undefined) return fallback;
    if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
      throw new ConfigError(`invalid ${what(field)} "${text}": expected a whole number from ${min} to ${max}`);
    }
    return Number(text);
  };
  const ttl = integer('ttl', REGISTRATION_DEFAULTS.ttl, 1, 86_400);
  // Checked now, so a bad spec stops start-up with exit code 2 rather than later.
  if (spec.check !== undefined) {
    parseHealthCheck(spec.check, { what: what('check'), send: spec.checkSend, expect: spec.checkExpect, sendWhat: what('checkSend'), expectWhat: what('checkExpect') });
  } else if (spec.checkSend !== undefined || spec.checkExpect !== undefined) {
    const [field, text] = spec.checkSend !== undefined ? (['checkSend', spec.checkSend] as const) : (['checkExpect', spec.checkExpect] as const);
    throw new ConfigError(`invalid ${what(field)} "${text ?? ''}": it belongs to a check, and ${what('check')} is not given`);
  }
  const service = spec.service.trim().toLowerCase();
  const instance = (spec.instance ?? defaultInstanceId(context.hostname, port)).toLowerCase();
  const duration = (field: keyof RegisterSpec, fallback: number): number => {
    const text = spec[field];
    const ms = text === undefined ? fallback : parseDuration(text, what(field));
    if (ms <= 0) throw new ConfigError(`invalid ${what(field)} "${text}": expected a duration above 0`);
    return ms;
  };
  const keyOptions = { prefix: context.prefix, domain: context.domain, service, instance };
  const valueOptions = {
    host,
    port,
    priority: integer('priority', SKYDNS_RECORD_DEFAULTS.priority, 0, 65535),
    weight: integer('weight', SKYDNS_RECORD_DEFAULTS.weight, 0, 65535),
    // The record's TTL is the lease's: no cache keeps an answer longer than the key may live.
    ttl,
  };
  // The registry names its fields; here they become what the user typed (`--service`, `--register "web:80" service`).
  const bad = registrationKeyProblem(keyOptions) ?? recordValueProblem(valueOptions);
  if (bad !== undefined) throw new ConfigError(`invalid ${what(bad.field)} "${bad.value}": ${bad.problem}`);
  return Object.freeze({
    key: registrationKey(keyOptions),
    value: recordValue(valueOptions),
    ttl,
    check: spec.check,
    checkSend: spec.checkSend,
    checkExpect: spec.checkExpect,
    checkInterval: duration('checkInterval', REGISTRATION_DEFAULTS.interval),
    checkTimeout: duration('checkTimeout', HEALTH_CHECK_DEFAULTS.timeout),
    rise: integer('rise', REGISTRATION_DEFAULTS.rise, 1, 1000),
    fall: integer('fall', REGISTRATION_DEFAULTS.fall, 1, 1000),
  });
}

/** Defaults of `srvlink register`, as `--help` shows them: the registry's own, written as a user types them. */
export const REGISTER_DEFAULTS = {
  priority: String(SKYDNS_RECORD_DEFAULTS.priority),
  weight: String(SKYDNS_RECORD_DEFAULTS.weight),
  ttl: String(REGISTRATION_DEFAULTS.ttl),
  checkInterval: formatDuration(REGISTRATION_DEFAULTS.interval),
  checkTimeout: formatDuration(HEALTH_CHECK_DEFAULTS.timeout),
  rise: String(REGISTRATION_DEFAULTS.rise),
  fall: String(REGISTRATION_DEFAULTS.fall),
  prefix: DEFAULT_SKYDNS_PREFIX,
} as const;

/** The optional keys of a registration spec, as `RegisterSpec` names them. */
export const REGISTER_SPEC_KEYS: readonly (keyof RegisterSpec)[] = ['host', 'priority', 'weight', 'ttl', 'instance', 'check', 'checkSend', 'checkExpect', 'checkInterval', 'checkTimeout', 'rise', 'fall'];

/**
 * `NAME:PORT[:key=value...]` of `srvlink run --register` (keys: host,
 * priority, weight, ttl, instance, check, check-send, check-expect,
 * check-interval, check-timeout, rise, fall). A value may hold colons
 * (`check=tcp://127.0.0.1:8080`, `check-expect=^Mode: (leader|follower)`):
 * a part without `=` continues the previous value.
 */
export function parseRegisterSpec(value: string, what: string): RegisterSpec {
  const expected = 'expected NAME:PORT[:key=value...], e.g. web:8080 or web:$PORT0:check=tcp://127.0.0.1:8080';
  const [service = '', port = '', ...rest] = value.split(':');
  if (service.trim() === '' || port.trim() === '') throw new ConfigError(`invalid ${what} "${value}": ${expected}`);
  const spec: RegisterSpec = { service: service.trim(), port: port.trim() };
  let last: keyof RegisterSpec | undefined;
  for (const part of rest) {
    const equals = part.indexOf('=');
    if (equals === -1) {
      if (last === undefined) throw new ConfigError(`invalid ${what} "${value}": "${part}" is not key=value; ${expected}`);
      spec[last] = `${spec[last] ?? ''}:${part}`;
      continue;
    }
    const key = part.slice(0, equals).trim().replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof RegisterSpec;
    if (!REGISTER_SPEC_KEYS.includes(key)) {
      throw new ConfigError(`invalid ${what} "${value}": unknown key "${part.slice(0, equals)}", expected one of host, priority, weight, ttl, instance, check, check-send, check-expect, check-interval, check-timeout, rise, fall`);
    }
    spec[key] = part.slice(equals + 1);
    last = key;
  }
  return spec;
}
