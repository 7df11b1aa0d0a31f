import { ConfigError } from '../core/errors.js';
import { absoluteName, isDomainName } from '../core/dns-name.js';
import { parseHostPort, type HostPort } from '../core/host-port.js';
import type { DnsFastPathChoice } from '../dns/native-udp.js';
import { DEFAULT_SKYDNS_PREFIX } from '../skydns-model/key-path.js';
import { describeSource, splitList, type OptionSource } from './option-source.js';

/** Settings of `srvlink dns`, validated and frozen. */
export interface DnsServeConfig {
  readonly listen: HostPort;
  /** Fully qualified, lower case, with the trailing dot. */
  readonly zones: readonly string[];
  /** etcd key prefix, without a trailing slash (`/skydns`). */
  readonly prefix: string;
  /** Records file; undefined serves the embedded demo records. */
  readonly records: string | undefined;
  /** Who reads UDP queries: the native addon's thread answering cached replies itself, the event loop, or native when the addon loads. */
  readonly dnsFastPath: DnsFastPathChoice;
}

export interface DnsServeInput {
  listen?: string;
  zone?: string[] | string;
  prefix?: string;
  records?: string;
  dnsFastPath?: string;
}

export const DNS_SERVE_DEFAULTS = { listen: '127.0.0.1:53', zone: 'skydns.local.', prefix: DEFAULT_SKYDNS_PREFIX, dnsFastPath: 'auto' } as const;

/** What `--dns-fast-path` takes. */
const FAST_PATH_CHOICES: readonly DnsFastPathChoice[] = ['native', 'js', 'auto'];

/** Validate the raw option strings of `srvlink dns` (pure; throws `ConfigError`). */
export function parseDnsServeConfig(input: DnsServeInput, sources: Partial<Record<keyof DnsServeInput, OptionSource>> = {}): DnsServeConfig {
  const name = (key: keyof DnsServeInput, flag: string): string => describeSource(sources[key] ?? { flag, from: 'cli' });
  const zones = splitList(input.zone ?? DNS_SERVE_DEFAULTS.zone).map((zone) => parseZone(zone, name('zone', '--zone')));
  if (zones.length === 0) throw new ConfigError(`invalid ${name('zone', '--zone')}: at least one zone is needed`);
  return Object.freeze({
    listen: parseHostPort(input.listen ?? DNS_SERVE_DEFAULTS.listen, name('listen', '--listen'), 53),
    zones: Object.freeze([...new Set(zones)]),
    prefix: parsePrefix(input.prefix ?? DNS_SERVE_DEFAULTS.prefix, name('prefix', '--prefix')),
    records: input.records === undefined || input.records === '' ? undefined : input.records,
    dnsFastPath: parseFastPath(input.dnsFastPath ?? DNS_SERVE_DEFAULTS.dnsFastPath, name('dnsFastPath', '--dns-fast-path')),
  });
}

function parseFastPath(value: string, what: string): DnsFastPathChoice {
  const text = value.trim().toLowerCase();
  const found = FAST_PATH_CHOICES.find((choice) => choice === text);
  if (found === undefined) throw new ConfigError(`invalid ${what} "${value}": expected native, js or auto`);
  return found;
}

/** A zone name: valid labels, lower-cased, fully qualified. */
export function parseZone(value: string, what: string): string {
  const text = value.trim();
  if (!isDomainName(text)) throw new ConfigError(`invalid ${what} "${value}": expected a domain name like skydns.local.`);
  return absoluteName(text);
}

/** An etcd key prefix: starts with `/`, no empty segments, trailing slash dropped. */
export function parsePrefix(value: string, what: string): string {
  const text = value.trim().replace(/\/+$/, '');
  if (!/^(\/[A-Za-z0-9_.-]+)+$/.test(text)) {
    throw new ConfigError(`invalid ${what} "${value}": expected an etcd key path like /skydns`);
  }
  return text;
}
