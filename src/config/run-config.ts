import { isIP } from 'node:net';
import { parseCidr, type Cidr } from '../core/cidr.js';
import type { RegisterSpec } from './register-config.js';
import { registerEntries } from './register-entries.js';
import { ConfigError } from '../core/errors.js';
import { formatDuration } from '../core/duration.js';
import { DNS_DISCOVERY_DEFAULTS } from '../discovery/dns-backend-source.js';
import { DEFAULT_SKYDNS_PREFIX } from '../skydns-model/key-path.js';
import { DNS_CLIENT_DEFAULTS } from '../dns/client.js';
import { FORWARDER_DEFAULTS } from '../proxy/forwarder.js';
import type { DataPlaneChoice } from '../proxy/native-data-plane.js';
import type { DnsFastPathChoice } from '../dns/native-udp.js';
import { DEFAULT_CACHE_ENTRIES } from '../stub/dns-cache.js';
import { parseHostPort, parseServerAddress, type HostPort } from '../core/host-port.js';
import { serviceSrvName } from '../discovery/service-name.js';
import { parseStaticBackends, type StaticBackend } from '../discovery/static-backend-source.js';
import type { LayeredValue } from './layer-settings.js';
import { invalidValue, readBoolean, readDuration, readInteger, readList, readOneOf } from './layered-value.js';
import { parseMappings, type Mapping } from './parse-mappings.js';
import { describeSource, flagName } from './option-source.js';
import { parsePrefix, parseZone } from './dns-serve-config.js';

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
  /** Who reads the stub's UDP queries: the native addon's thread answering cached replies itself, the event loop, or native when the addon loads. */
  readonly dnsFastPath: DnsFastPathChoice;
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

/** What `--dns-fast-path` takes (`srvlink run` and `srvlink dns`). */
export const DNS_FAST_PATH_CHOICES: readonly DnsFastPathChoice[] = ['native', 'js', 'auto'];

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
  dnsFastPath: 'auto',
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
  const duration = (key: RunSetting): number => readDuration(get(key));
  const integer = (key: RunSetting, min: number, max: number): number => readInteger(get(key), min, max);

  const domainValue = get('domain');
  const domainList = readList(domainValue);
  if (domainList.length !== 1) {
    throw new ConfigError(`missing ${describeSource(domainValue.source)}: the environment this container belongs to, e.g. --domain env1.skydns.local`);
  }
  const domain = parseZone(domainList[0] as string, describeSource(domainValue.source));

  const listenValue = get('listen');
  const listen = String(listenValue.value).trim();
  if (isIP(listen) === 0) throw invalidValue(listenValue, 'expected an IP address to bind, e.g. 127.0.0.1 or 0.0.0.0');

  const mappings = parseMappings(get('map'), domain, listen);

  const discoveryValue = get('discovery');
  const discovery = String(discoveryValue.value);
  if (discovery !== 'dns' && discovery !== 'static' && discovery !== 'etcd') throw invalidValue(discoveryValue, 'expected dns, etcd or static');

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
  const clusterDns = readList(clusterDnsValue).map((v) => parseServerAddress(v, describeSource(clusterDnsValue.source), 53));

  const positive = (key: RunSetting): number => {
    const ms = duration(key);
    if (ms <= 0) throw invalidValue(get(key), 'expected a duration above 0');
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
  if (dnsListen && isIP(dnsListen.host) === 0) throw invalidValue(dnsListenValue, 'expected ADDR[:PORT] with an IP address, or none');

  const clusterDomainValue = get('clusterDomain');
  const clusterDomainList = readList(clusterDomainValue);
  const parent = domain.slice(domain.indexOf('.') + 1);
  const clusterDomain = clusterDomainList[0] !== undefined ? parseZone(clusterDomainList[0], describeSource(clusterDomainValue.source)) : parent === '' ? domain : parent;

  const upstreamValue = get('upstream');
  const upstream = readList(upstreamValue).map((v) => parseServerAddress(v, describeSource(upstreamValue.source), 53));

  const writeResolvConf = readBoolean(get('writeResolvConf'));
  if (writeResolvConf && (!dnsListen || dnsListen.port !== 53)) {
    throw new ConfigError('invalid --write-resolv-conf: resolv.conf can only point at a stub on port 53 (see --dns-listen)');
  }
  const register = registerEntries(get('register'));

  const reloadSignalValue = get('reloadSignal');
  let reloadSignal: NodeJS.Signals | undefined;
  if (reloadSignalValue.value !== undefined) {
    const name = String(reloadSignalValue.value).trim().toUpperCase();
    const full = name.startsWith('SIG') ? name : `SIG${name}`;
    if (!(RELOAD_SIGNALS as readonly string[]).includes(full)) throw invalidValue(reloadSignalValue, `expected one of ${RELOAD_SIGNALS.join(', ')}`);
    reloadSignal = full as NodeJS.Signals;
  }

  const allowFromValue = get('allowFrom');
  const allowFrom = readList(allowFromValue).map((v) => parseCidr(v, describeSource(allowFromValue.source)));

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
    dataPlane: readOneOf(get('dataPlane'), DATA_PLANE_CHOICES),
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
    dnsFastPath: readOneOf(get('dnsFastPath'), DNS_FAST_PATH_CHOICES),
    allowFrom: Object.freeze(allowFrom),
    register: Object.freeze(register),
    prefix: parsePrefix(String(get('prefix').value), describeSource(get('prefix').source)),
    reloadSignal,
  });
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

