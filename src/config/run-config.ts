import { isIP } from 'node:net';
import { parseCidr, type Cidr } from '../core/cidr.js';
import { canonicalName, isDomainName } from '../core/dns-name.js';
import type { RegisterSpec } from './register-config.js';
import { registerEntries } from './register-entries.js';
import { unknownKeyMessage } from './nearest-key.js';
import { ConfigError } from '../core/errors.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { DNS_DISCOVERY_DEFAULTS } from '../discovery/dns-backend-source.js';
import { DEFAULT_SKYDNS_PREFIX } from '../skydns-model/key-path.js';
import { DNS_CLIENT_DEFAULTS } from '../dns/client.js';
import { FORWARDER_DEFAULTS } from '../proxy/forwarder.js';
import type { DataPlaneChoice } from '../proxy/native-data-plane.js';
import { DEFAULT_CACHE_ENTRIES } from '../stub/dns-cache.js';
import { formatHostPort, parseHostPort, parsePort, parseServerAddress, type HostPort } from '../core/host-port.js';
import { serviceSrvName } from '../discovery/service-name.js';
import { parseStaticBackends, type StaticBackend } from '../discovery/static-backend-source.js';
import type { LayeredValue } from './layer-settings.js';
import { describeSource, flagName, type OptionSource } from './option-source.js';
import { parsePrefix, parseZone } from './dns-serve-config.js';

/** One local listener and the service behind it. */
export interface Mapping {
  readonly listen: HostPort;
  /** The service as written (`zookeeper`, `postgres.env2`, `_x._tcp.domain`). */
  readonly service: string;
  /** The SRV name it stands for, fully qualified. */
  readonly srvName: string;
  /**
   * Names the DNS stub answers with the listener's address: canonical (lower
   * case, no trailing dot). By default the service's short name and its name
   * in its environment (`zookeeper`, `zookeeper.env1.skydns.local`), plus any
   * `aliases` given with the mapping in the config file.
   */
  readonly aliases: readonly string[];
}

export type DiscoveryKind = 'dns' | 'static' | 'etcd';

/** Settings of `srvlink run`, validated and frozen. Durations in ms. */
export interface RunConfig {
  /** The container's environment, fully qualified (`env1.skydns.local.`). */
  readonly domain: string;
  readonly mappings: readonly Mapping[];
  /** Cluster DNS servers; empty means "the system's resolvers". */
  readonly clusterDns: readonly HostPort[];
  readonly discovery: DiscoveryKind;
  /** Static backends by SRV name (discovery `static`). */
  readonly backends: ReadonlyMap<string, readonly StaticBackend[]>;
  readonly connectTimeout: number;
  /** From accept to a connected backend, however many are tried; past it the client is closed. */
  readonly dialDeadline: number;
  /** Undefined: no idle timeout. */
  readonly idleTimeout: number | undefined;
  readonly maxConns: number;
  readonly ejectAfter: number;
  readonly ejectTime: number;
  readonly drainTimeout: number;
  /** What moves forwarded bytes: splice(2) in the native addon, the JS event loop, or native when the addon loads. */
  readonly dataPlane: DataPlaneChoice;
  readonly ttlMin: number;
  readonly ttlMax: number;
  readonly staleMax: number;
  readonly dnsTimeout: number;
  /** Where the DNS stub listens; undefined: no stub (`--dns-listen none`). */
  readonly dnsListen: HostPort | undefined;
  /** Names forwarded to the cluster DNS, fully qualified: the parent of `domain` unless given. */
  readonly clusterDomain: string;
  /** Resolvers for every other name; empty means "the nameservers of resolv.conf at start". */
  readonly upstream: readonly HostPort[];
  /** Point the container's resolv.conf at the stub before anything else starts. */
  readonly writeResolvConf: boolean;
  /** The resolv.conf read for upstreams (and rewritten with `writeResolvConf`). */
  readonly resolvConf: string;
  readonly dnsCacheSize: number;
  /** Networks the stub answers when bound beyond loopback; empty: loopback and the container's own private networks. */
  readonly allowFrom: readonly Cidr[];
  /** The container's own services to register in etcd (`--register NAME:PORT[:key=value...]`). */
  readonly register: readonly RegisterSpec[];
  /** etcd key prefix of the SkyDNS layout, for etcd discovery and registration. */
  readonly prefix: string;
  /**
   * The signal that reloads the config file (`--reload-signal`); undefined:
   * SIGHUP when no command is supervised, none when one is (its signals are the child's).
   */
  readonly reloadSignal: NodeJS.Signals | undefined;
}

/** What `--data-plane` takes. */
export const DATA_PLANE_CHOICES: readonly DataPlaneChoice[] = ['native', 'js', 'auto'];

/** Signals `--reload-signal` may name: those a user sends on purpose and nothing else needs. */
export const RELOAD_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;

/**
 * Defaults, as `--help` shows them. Those of a part are the part's own
 * (`FORWARDER_DEFAULTS`, `DNS_DISCOVERY_DEFAULTS`, ...), written here as a
 * user types them, so that the two never differ.
 */
export const RUN_DEFAULTS = {
  listen: '127.0.0.1',
  discovery: 'dns',
  connectTimeout: formatDuration(FORWARDER_DEFAULTS.connectTimeout),
  dialDeadline: formatDuration(FORWARDER_DEFAULTS.dialDeadline),
  idleTimeout: 'off',
  maxConns: String(FORWARDER_DEFAULTS.maxConnections),
  ejectAfter: String(FORWARDER_DEFAULTS.ejectAfter),
  ejectTime: formatDuration(FORWARDER_DEFAULTS.ejectBase),
  drainTimeout: formatDuration(FORWARDER_DEFAULTS.drainTimeout),
  dataPlane: 'auto',
  ttlMin: formatDuration(DNS_DISCOVERY_DEFAULTS.ttlMin),
  ttlMax: formatDuration(DNS_DISCOVERY_DEFAULTS.ttlMax),
  staleMax: formatDuration(DNS_DISCOVERY_DEFAULTS.staleMax),
  dnsTimeout: formatDuration(DNS_CLIENT_DEFAULTS.timeout),
  dnsListen: '127.0.0.1:53',
  resolvConf: '/etc/resolv.conf',
  dnsCacheSize: String(DEFAULT_CACHE_ENTRIES),
  prefix: DEFAULT_SKYDNS_PREFIX,
} as const;

/** The attributes `parseRunConfig` reads (commander's camelCase names). */
export type RunSetting =
  | keyof typeof RUN_DEFAULTS
  | 'domain'
  | 'map'
  | 'clusterDns'
  | 'backend'
  | 'clusterDomain'
  | 'upstream'
  | 'writeResolvConf'
  | 'allowFrom'
  | 'register'
  | 'reloadSignal';

/**
 * Validate the layered settings of `srvlink run` (pure). Every error is a
 * `ConfigError` that names the flag, variable or config key, the value and
 * what is expected.
 */
export function parseRunConfig(input: Partial<Record<RunSetting, LayeredValue>>): RunConfig {
  const get = (key: RunSetting): LayeredValue => {
    const given = input[key];
    if (given) return given;
    const fallback = key in RUN_DEFAULTS ? RUN_DEFAULTS[key as keyof typeof RUN_DEFAULTS] : undefined;
    return { value: fallback, source: { flag: `--${flagName(key)}`, from: 'default' } };
  };
  const duration = (key: RunSetting): number => parseDurationValue(get(key));
  const integer = (key: RunSetting, min: number, max: number): number => parseIntegerValue(get(key), min, max);

  const domainValue = get('domain');
  const domainList = listOf(domainValue);
  if (domainList.length !== 1) {
    throw new ConfigError(`missing ${describeSource(domainValue.source)}: the environment this container belongs to, e.g. --domain env1.skydns.local`);
  }
  const domain = parseZone(domainList[0] as string, describeSource(domainValue.source));

  const listenValue = get('listen');
  const listen = String(listenValue.value).trim();
  if (isIP(listen) === 0) throw invalid(listenValue, 'expected an IP address to bind, e.g. 127.0.0.1 or 0.0.0.0');

  const mapValue = get('map');
  const mappings = assignAddresses(
    mapEntries(mapValue).map((entry) => parseMapping(entry, domain, mapValue.source)),
    listen,
    mapValue.source,
  );
  const aliasOwner = new Map<string, string>();
  for (const mapping of mappings) {
    for (const alias of mapping.aliases) {
      const other = aliasOwner.get(alias);
      if (other !== undefined && other !== formatHostPort(mapping.listen)) {
        throw new ConfigError(`invalid ${describeSource(mapValue.source)}: name "${alias}" would lead to two listeners (${other} and ${formatHostPort(mapping.listen)}); give one of them other aliases`);
      }
      aliasOwner.set(alias, formatHostPort(mapping.listen));
    }
  }
  if (mappings.length === 0) {
    throw new ConfigError(`missing ${describeSource(mapValue.source)}: at least one [ADDR:]PORT=SERVICE mapping, e.g. --map 2181=zookeeper`);
  }

  const discoveryValue = get('discovery');
  const discovery = String(discoveryValue.value);
  if (discovery !== 'dns' && discovery !== 'static' && discovery !== 'etcd') throw invalid(discoveryValue, 'expected dns, etcd or static');

  const backendValue = get('backend');
  const backends = new Map<string, StaticBackend[]>();
  for (const entry of backendEntries(backendValue)) {
    const parsed = parseStaticBackends(entry, describeSource(backendValue.source));
    const srvName = serviceSrvName(parsed.service, domain);
    if (!mappings.some((m) => m.srvName === srvName)) {
      throw new ConfigError(`invalid ${describeSource(backendValue.source)} "${entry}": no --map uses service "${parsed.service}"`);
    }
    backends.set(srvName, [...(backends.get(srvName) ?? []), ...parsed.backends]);
  }
  if (discovery === 'static') {
    const missing = mappings.find((m) => !backends.has(m.srvName));
    if (missing) throw new ConfigError(`missing --backend for service "${missing.service}": --discovery static needs backends for every mapping`);
  }

  const clusterDnsValue = get('clusterDns');
  const clusterDns = listOf(clusterDnsValue).map((v) => parseServerAddress(v, describeSource(clusterDnsValue.source), 53));

  const positive = (key: RunSetting): number => {
    const ms = duration(key);
    if (ms <= 0) throw invalid(get(key), 'expected a duration above 0');
    return ms;
  };
  const ttlMin = positive('ttlMin');
  const ttlMax = positive('ttlMax');
  if (ttlMin > ttlMax) {
    throw new ConfigError(`invalid ${describeSource(get('ttlMin').source)} "${String(get('ttlMin').value)}": longer than --ttl-max (${String(get('ttlMax').value)})`);
  }
  const idle = duration('idleTimeout');

  const dnsListenValue = get('dnsListen');
  const dnsListenText = String(dnsListenValue.value).trim();
  const dnsListen = dnsListenText === 'none' ? undefined : parseHostPort(dnsListenText, describeSource(dnsListenValue.source), 53);
  if (dnsListen && isIP(dnsListen.host) === 0) throw invalid(dnsListenValue, 'expected ADDR[:PORT] with an IP address, or none');

  const clusterDomainValue = get('clusterDomain');
  const clusterDomainList = listOf(clusterDomainValue);
  const parent = domain.slice(domain.indexOf('.') + 1);
  const clusterDomain = clusterDomainList[0] !== undefined ? parseZone(clusterDomainList[0], describeSource(clusterDomainValue.source)) : parent === '' ? domain : parent;

  const upstreamValue = get('upstream');
  const upstream = listOf(upstreamValue).map((v) => parseServerAddress(v, describeSource(upstreamValue.source), 53));

  const writeResolvConf = parseBoolean(get('writeResolvConf'));
  if (writeResolvConf && (!dnsListen || dnsListen.port !== 53)) {
    throw new ConfigError('invalid --write-resolv-conf: resolv.conf can only point at a stub on port 53 (see --dns-listen)');
  }
  const register = registerEntries(get('register'));

  const reloadSignalValue = get('reloadSignal');
  let reloadSignal: NodeJS.Signals | undefined;
  if (reloadSignalValue.value !== undefined) {
    const name = String(reloadSignalValue.value).trim().toUpperCase();
    const full = name.startsWith('SIG') ? name : `SIG${name}`;
    if (!(RELOAD_SIGNALS as readonly string[]).includes(full)) throw invalid(reloadSignalValue, `expected one of ${RELOAD_SIGNALS.join(', ')}`);
    reloadSignal = full as NodeJS.Signals;
  }

  const allowFromValue = get('allowFrom');
  const allowFrom = listOf(allowFromValue).map((v) => parseCidr(v, describeSource(allowFromValue.source)));

  return Object.freeze({
    domain,
    mappings: Object.freeze(mappings),
    clusterDns: Object.freeze(clusterDns),
    discovery,
    backends,
    connectTimeout: positive('connectTimeout'),
    dialDeadline: positive('dialDeadline'),
    idleTimeout: idle > 0 ? idle : undefined,
    maxConns: integer('maxConns', 1, 1_000_000),
    ejectAfter: integer('ejectAfter', 1, 1000),
    ejectTime: positive('ejectTime'),
    drainTimeout: duration('drainTimeout'),
    dataPlane: oneOf(get('dataPlane'), DATA_PLANE_CHOICES),
    ttlMin,
    ttlMax,
    staleMax: duration('staleMax'),
    dnsTimeout: positive('dnsTimeout'),
    dnsListen,
    clusterDomain,
    upstream: Object.freeze(upstream),
    writeResolvConf,
    resolvConf: String(get('resolvConf').value),
    dnsCacheSize: integer('dnsCacheSize', 1, 10_000_000),
    allowFrom: Object.freeze(allowFrom),
    register: Object.freeze(register),
    prefix: parsePrefix(String(get('prefix').value), describeSource(get('prefix').source)),
    reloadSignal,
  });
}

/** `[ADDR:]PORT=SERVICE` (docs/architecture.md §3); an address-less mapping gets its address later. */
/** A mapping before address assignment: `host` is missing when only a port was given. */
interface ParsedMapping {
  host: string | undefined;
  port: number;
  service: string;
  srvName: string;
  aliases: string[];
}

/** A `--map` value, with the extra aliases a config file entry may carry. */
interface MapEntry {
  text: string;
  aliases: string[];
}

function parseMapping({ text: entry, aliases: extra }: MapEntry, domain: string, source: OptionSource): ParsedMapping {
  const what = describeSource(source);
  const equals = entry.indexOf('=');
  if (equals <= 0 || equals === entry.length - 1) {
    throw new ConfigError(`invalid ${what} "${entry}": expected [ADDR:]PORT=SERVICE, e.g. 2181=zookeeper or 127.0.0.2:5432=postgres.env2`);
  }
  const left = entry.slice(0, equals).trim();
  const service = entry.slice(equals + 1).trim();
  let listen: { host: string | undefined; port: number };
  if (/^\d+$/.test(left)) {
    listen = { host: undefined, port: parsePort(left, `${what} "${entry}"`) };
  } else if (!left.includes(':')) {
    // `postgres=5432`: the service and the port the other way round (or no port at all).
    const example = /^\d+$/.test(service) ? `${service}=${left}` : '5432=postgres';
    throw new ConfigError(`invalid ${what} "${entry}": "${left}" is not a port; expected PORT=SERVICE (or ADDR:PORT=SERVICE), as in ${example}`);
  } else {
    listen = parseHostPort(left, `${what} "${entry}"`);
    if (isIP(listen.host ?? '') === 0) throw new ConfigError(`invalid ${what} "${entry}": the address to listen on must be an IP address, not "${listen.host}"`);
  }
  let srvName: string;
  try {
    srvName = serviceSrvName(service, domain);
  } catch (err) {
    throw new ConfigError(`invalid ${what} "${entry}": ${(err as Error).message}`);
  }
  const aliases = [...defaultAliases(service, srvName, domain)];
  for (const alias of extra) {
    const name = canonicalName(alias.trim());
    if (!isDomainName(name)) {
      throw new ConfigError(`invalid ${what} "${entry}": alias "${alias}" is not a valid DNS name`);
    }
    if (!aliases.includes(name)) aliases.push(name);
  }
  return { host: listen.host, port: listen.port, service, srvName, aliases };
}

/**
 * The names an app may use for a mapped service (docs/architecture.md §3): the service
 * as written and its name in its environment, canonical. `zookeeper` in
 * env1.skydns.local → `zookeeper`, `zookeeper.env1.skydns.local`;
 * `postgres.env2` → `postgres.env2`, `postgres.env2.skydns.local`; a full
 * SRV name `_x._tcp.ENVDOMAIN` → `x.ENVDOMAIN`, and `x` when ENVDOMAIN is
 * this container's environment.
 */
export function defaultAliases(service: string, srvName: string, domain: string): string[] {
  const canonical = srvName.replace(/\.$/, '');
  const labels = canonical.split('.');
  const name = (labels[0] ?? '').replace(/^_/, '');
  const environment = labels.slice(2).join('.');
  const inEnvironment = `${name}.${environment}`;
  const written = service.trim().toLowerCase().replace(/\.$/, '');
  if (written.startsWith('_')) {
    return environment === domain.replace(/\.$/, '') ? [name, inEnvironment] : [inEnvironment];
  }
  return written === inEnvironment ? [written] : [written, inEnvironment];
}

/**
 * Give address-less mappings the default address; when several share a port
 * on loopback, the next free 127.0.0.x (all of 127.0.0.0/8 is loopback on
 * Linux), so each gets its own listener. Two mappings on one address and
 * port are refused.
 */
function assignAddresses(parsed: ParsedMapping[], defaultHost: string, source: OptionSource): Mapping[] {
  const explicit = parsed.flatMap((m) => (m.host !== undefined && m.port !== 0 ? [formatHostPort({ host: m.host, port: m.port })] : []));
  const taken = new Set(explicit);
  if (taken.size !== explicit.length) {
    const twice = explicit.find((address, i) => explicit.indexOf(address) !== i);
    throw new ConfigError(`invalid ${describeSource(source)}: two mappings on ${twice}`);
  }
  const loopback = /^127\.0\.0\.(\d+)$/.exec(defaultHost);
  return parsed.map((m) => {
    const port = m.port;
    if (m.host !== undefined) return { listen: { host: m.host, port }, service: m.service, srvName: m.srvName, aliases: m.aliases };
    let host = defaultHost;
    if (port !== 0 && taken.has(formatHostPort({ host, port }))) {
      if (!loopback) {
        throw new ConfigError(
          `invalid ${describeSource(source)} "${port}=${m.service}": port ${port} is mapped twice on ${defaultHost}; give each an address (ADDR:PORT=SERVICE) or listen on loopback`,
        );
      }
      let last = Number(loopback[1]);
      do {
        last++;
        if (last > 254) throw new ConfigError(`invalid ${describeSource(source)}: too many mappings on port ${port}`);
        host = `127.0.0.${last}`;
      } while (taken.has(formatHostPort({ host, port })));
    }
    if (port !== 0) taken.add(formatHostPort({ host, port }));
    return { listen: { host, port }, service: m.service, srvName: m.srvName, aliases: m.aliases };
  });
}

const MAP_ENTRY_KEYS = ['listen', 'service', 'aliases'];

/**
 * `--map` values: strings (`[ADDR:]PORT=SERVICE`, comma lists from the
 * environment) or, in a config file, objects `{listen, service, aliases}`.
 */
function mapEntries(layered: LayeredValue): MapEntry[] {
  const items = Array.isArray(layered.value) ? layered.value : layered.value === undefined || layered.value === null ? [] : [layered.value];
  return items.flatMap((item): MapEntry[] => {
    if (item === null || typeof item !== 'object') return listOf({ ...layered, value: item }).map((text) => ({ text, aliases: [] }));
    const entry = item as Record<string, unknown>;
    const unknown = Object.keys(entry).find((key) => !MAP_ENTRY_KEYS.includes(key));
    if (unknown !== undefined) throw new ConfigError(unknownKeyMessage(unknown, `${describeSource(layered.source)}, entry ${JSON.stringify(entry)}`, MAP_ENTRY_KEYS));
    if (entry.listen === undefined || typeof entry.service !== 'string') {
      throw invalid({ ...layered, value: item }, 'expected "[ADDR:]PORT=SERVICE" or {listen: "[ADDR:]PORT", service: NAME, aliases: [NAME, ...]}');
    }
    const aliases = entry.aliases === undefined ? [] : Array.isArray(entry.aliases) ? entry.aliases.map(String) : [String(entry.aliases)];
    return [{ text: `${String(entry.listen)}=${entry.service}`, aliases }];
  });
}

function parseBoolean(layered: LayeredValue): boolean {
  const { value } = layered;
  if (value === undefined || value === false || value === 'false' || value === '0' || value === '') return false;
  if (value === true || value === 'true' || value === '1') return true;
  throw invalid(layered, 'expected true or false');
}

/** `--backend` values: strings, or in a config file a mapping of service → addresses. */
function backendEntries(layered: LayeredValue): string[] {
  const { value } = layered;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value as Record<string, unknown>).map(([service, hosts]) => `${service}=${(Array.isArray(hosts) ? hosts : [hosts]).map(String).join(',')}`);
  }
  // A comma separates backends of one service, so entries split only on `;` or list items.
  return (Array.isArray(value) ? value.map(String) : value === undefined ? [] : String(value).split(';'))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** A repeatable setting as a list: repeated flags, comma-separated text, or a YAML list. */
function listOf(layered: LayeredValue): string[] {
  const { value } = layered;
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((item) => {
    if (typeof item !== 'string' && typeof item !== 'number') throw invalid(layered, 'expected text or a list of text');
    return String(item).split(',');
  }).map((v) => v.trim()).filter((v) => v !== '');
}

function parseDurationValue(layered: LayeredValue): number {
  const { value } = layered;
  if (value === 'off' || value === false) return 0;
  if (typeof value === 'number') return parseDuration(String(value), describeSource(layered.source));
  if (typeof value !== 'string') throw invalid(layered, 'expected a duration like 500ms, 2s, 5m');
  return parseDuration(value, describeSource(layered.source));
}

function parseIntegerValue(layered: LayeredValue, min: number, max: number): number {
  const text = String(layered.value).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw invalid(layered, `expected a whole number from ${min} to ${max}`);
  return n;
}

/** One of `choices`, as typed (trimmed, lower case). */
function oneOf<T extends string>(layered: LayeredValue, choices: readonly T[]): T {
  const text = String(layered.value).trim().toLowerCase();
  const found = choices.find((choice) => choice === text);
  if (found === undefined) throw invalid(layered, `expected ${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1] ?? ''}`);
  return found;
}

function invalid(layered: LayeredValue, expected: string): ConfigError {
  const shown = typeof layered.value === 'string' ? layered.value : JSON.stringify(layered.value);
  return new ConfigError(`invalid ${describeSource(layered.source)} "${shown}": ${expected}`);
}
