import { formatHostPort } from '../core/host-port.js';
import type { Mapping } from './parse-mappings.js';
import type { RunConfig } from './run-config.js';

/**
 * Settings a running `srvlink run` cannot change: the parts they shape are
 * built once (the stub's socket, cache, zones and access list; resolv.conf,
 * written at start; the signal handlers). A reload keeps their running
 * value and says so. Keys as in the config file.
 */
export const RESTART_SETTINGS: readonly { key: string; field: keyof RunConfig }[] = [
  { key: 'dns-listen', field: 'dnsListen' },
  { key: 'cluster-domain', field: 'clusterDomain' },
  { key: 'allow-from', field: 'allowFrom' },
  { key: 'dns-cache-size', field: 'dnsCacheSize' },
  { key: 'write-resolv-conf', field: 'writeResolvConf' },
  { key: 'resolv-conf', field: 'resolvConf' },
  { key: 'prefix', field: 'prefix' },
  { key: 'reload-signal', field: 'reloadSignal' },
  { key: 'data-plane', field: 'dataPlane' },
  { key: 'dns-fast-path', field: 'dnsFastPath' },
];

/** What a reload changes, mapping by mapping (pure). */
export interface ReloadPlan {
  /** Mappings to start: new listen addresses, or an address now serving another service. */
  readonly added: readonly Mapping[];
  /** Mappings to stop (listener closed, open connections drained). */
  readonly removed: readonly Mapping[];
  /** Mappings that stay: same address, same service; their forwarder and connections stay. */
  readonly kept: readonly { before: Mapping; after: Mapping }[];
  /** Connect/idle timeouts, the dial deadline, limits, ejection or drain changed: kept forwarders are reconfigured. */
  readonly forwarderSettings: boolean;
  /** How backends are found changed (discovery dns↔static, cluster DNS, static backends, TTLs): kept mappings get a new source. */
  readonly discovery: boolean;
  /** The stub's resolvers changed (cluster DNS, upstreams, DNS timeout). */
  readonly resolvers: boolean;
  /** Keys whose new value waits for a restart (see `RESTART_SETTINGS`). */
  readonly restartNeeded: readonly string[];
}

const FORWARDER_FIELDS: readonly (keyof RunConfig)[] = ['connectTimeout', 'dialDeadline', 'idleTimeout', 'maxConns', 'ejectAfter', 'ejectTime', 'drainTimeout'];
const DISCOVERY_FIELDS: readonly (keyof RunConfig)[] = ['discovery', 'clusterDns', 'backends', 'ttlMin', 'ttlMax', 'staleMax', 'dnsTimeout'];
const RESOLVER_FIELDS: readonly (keyof RunConfig)[] = ['clusterDns', 'upstream', 'dnsTimeout'];

/** The mapping's identity across reloads: its configured address and its SRV name. */
export function mappingKey(mapping: Mapping): string {
  return `${formatHostPort(mapping.listen)}=${mapping.srvName}`;
}

/**
 * Compare the running config with a new one (pure). A mapping stays when
 * its configured listen address (port 0 included) and SRV name are the
 * same; its aliases may change. Discovery to or from etcd needs the etcd
 * client and zone built at start: that change waits for a restart too.
 */
export function planReload(before: RunConfig, after: RunConfig): ReloadPlan {
  const old = new Map(before.mappings.map((m) => [mappingKey(m), m]));
  const next = new Map(after.mappings.map((m) => [mappingKey(m), m]));
  const kept = [...next].flatMap(([key, m]) => {
    const previous = old.get(key);
    return previous ? [{ before: previous, after: m }] : [];
  });
  const changed = (fields: readonly (keyof RunConfig)[]): boolean => fields.some((f) => !same(before[f], after[f]));
  const restartNeeded = RESTART_SETTINGS.filter(({ field }) => !same(before[field], after[field])).map(({ key }) => key);
  const etcdSwitch = (before.discovery === 'etcd') !== (after.discovery === 'etcd');
  if (etcdSwitch) restartNeeded.push('discovery');
  // The search line of a resolv.conf written at start names the old domain.
  if (before.writeResolvConf && before.domain !== after.domain) restartNeeded.push('domain');
  return {
    added: [...next].filter(([key]) => !old.has(key)).map(([, m]) => m),
    removed: [...old].filter(([key]) => !next.has(key)).map(([, m]) => m),
    kept,
    forwarderSettings: changed(FORWARDER_FIELDS),
    discovery: !etcdSwitch && changed(DISCOVERY_FIELDS),
    resolvers: changed(RESOLVER_FIELDS),
    restartNeeded,
  };
}

/** Deep equality of config values (frozen plain data, Maps of static backends). */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, replacer) === JSON.stringify(b, replacer);
}

function replacer(_key: string, value: unknown): unknown {
  return value instanceof Map ? [...(value as Map<unknown, unknown>)] : value;
}
