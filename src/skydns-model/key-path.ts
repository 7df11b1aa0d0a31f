import { SrvlinkError } from '../core/errors.js';
import { canonicalName } from '../core/dns-name.js';

/** Where SkyDNS and CoreDNS keep their records unless told otherwise (CoreDNS plugin/etcd `path`). */
export const DEFAULT_SKYDNS_PREFIX = '/skydns';

/**
 * The etcd key of a DNS name in the SkyDNS layout: the labels reversed under
 * `prefix`, lower-cased (CoreDNS `msg.Path`; RFC 4343: names compare without
 * case, etcd keys do not, so keys are always written lower-case).
 *
 * `_zookeeper._tcp.env1.skydns.local.` → `/skydns/local/skydns/env1/_tcp/_zookeeper`.
 * The root name maps to the prefix itself. `prefix` may be given with or
 * without its leading and trailing slash (`skydns`, `/skydns/`). Wildcard
 * labels (`*`, `any`) are kept as they are: the caller decides what they mean.
 */
export function nameToKey(name: string, prefix: string = DEFAULT_SKYDNS_PREFIX): string {
  const base = normalizePrefix(prefix);
  const canonical = canonicalName(name);
  if (canonical === '') return base === '' ? '/' : base;
  return `${base}/${canonical.split('.').reverse().join('/')}`;
}

/**
 * The DNS name of an etcd key: the inverse of `nameToKey` (CoreDNS
 * `msg.Domain`), fully qualified with its trailing dot.
 *
 * `/skydns/local/skydns/env1/_tcp/_zookeeper/zk1` → `zk1._zookeeper._tcp.env1.skydns.local.`.
 * Empty path segments (`//`, a trailing `/`) are ignored. Throws a
 * `SrvlinkError` (`ERR_SKYDNS_KEY`) when `key` is not under `prefix`.
 */
export function keyToName(key: string, prefix: string = DEFAULT_SKYDNS_PREFIX): string {
  const base = normalizePrefix(prefix);
  if (key !== base && !key.startsWith(`${base}/`)) {
    throw new SrvlinkError('ERR_SKYDNS_KEY', `cannot read key "${key}" as a name: it is not under prefix "${prefix}"`);
  }
  const labels = key
    .slice(base.length)
    .split('/')
    .filter((segment) => segment !== '');
  if (labels.length === 0) return '.';
  return `${labels.reverse().join('.')}.`;
}

/** `/skydns`, `skydns`, `/skydns/` → `/skydns`; `/` or `` → `` (keys then start right at the top). */
function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `/${trimmed}`;
}
