import { canonicalName, relativeName } from '../core/dns-name.js';
import { keyToName, nameToKey } from '../skydns-model/key-path.js';
import type { ZoneEntry, ZoneStore } from './zone-store.js';

/** CoreDNS msg.PathWithWildcard: either label matches any label at its place. */
const WILDCARDS = new Set(['*', 'any']);

/** What answers for a name, and whether it exists at all. */
export interface FoundEntries {
  /** Something is stored at or below the name (decides NXDOMAIN vs NODATA). */
  exists: boolean;
  /** The entries that answer, after CoreDNS's `shouldInclude` and `msg.Group`. */
  entries: ZoneEntry[];
}

export interface FindOptions {
  /** Only the name's own key (CNAME, PTR: CoreDNS `exact`), not its subtree. */
  exact: boolean;
  /** TXT question: records without a host still count (CoreDNS `shouldInclude`). */
  txt: boolean;
}

/**
 * The entries that answer for `name` (CoreDNS `Etcd.Records`, `get`,
 * `loopNodes`), before any record is built from them: the subtree under the
 * name's key (the key itself only when nothing is below it); a `*` or `any`
 * label matches any label at its place, deeper keys included
 * (`msg.PathWithWildcard`); records without a host only for TXT
 * (`shouldInclude`); then `msg.Group`. Pure: reads `zone.store` only.
 */
export function findZoneEntries(zone: { store: ZoneStore; prefix: string }, name: string, options: FindOptions): FoundEntries {
  const pattern = reversedLabels(canonicalName(name));
  const star = pattern.findIndex((label) => WILDCARDS.has(label));
  let all: readonly ZoneEntry[];
  let exact: readonly ZoneEntry[];
  if (star === -1) {
    const key = nameToKey(name, zone.prefix);
    const own = zone.store.get(key);
    const below = zone.store.subtree(subtreeOf(key));
    // CoreDNS `get`: the subtree answers; the key itself only when nothing is below it.
    all = below.length > 0 ? below : own ? [own] : [];
    exact = own ? [own] : [];
  } else {
    // CoreDNS `PathWithWildcard`: read from the last label before the wildcard down,
    // then keep the keys whose labels match the pattern (deeper keys included).
    const base = nameToKey(pattern.slice(0, star).reverse().join('.') || '.', zone.prefix);
    all = zone.store.subtree(subtreeOf(base)).filter((entry) => matches(pattern, keyLabels(zone.prefix, entry.key)));
    exact = all.filter((entry) => keyLabels(zone.prefix, entry.key).length === pattern.length);
  }
  const usable = (options.exact ? exact : all).filter(
    (entry) => entry.record.host !== '' || (options.txt && entry.record.text !== ''),
  );
  return { exists: all.length > 0, entries: group(usable) };
}

/** `skydns.local` → `['local', 'skydns']`; the root → `[]`. */
function reversedLabels(canonical: string): string[] {
  return canonical === '' ? [] : canonical.split('.').reverse();
}

function keyLabels(prefix: string, key: string): string[] {
  return reversedLabels(relativeName(keyToName(key, prefix)));
}

function matches(pattern: readonly string[], labels: readonly string[]): boolean {
  if (labels.length < pattern.length) return false;
  return pattern.every((label, i) => WILDCARDS.has(label) || label === labels[i]);
}

function subtreeOf(key: string): string {
  return key.endsWith('/') ? key : `${key}/`;
}

/**
 * CoreDNS `msg.Group`: the group of the shortest key sets the group of the
 * answer; then only records of that group, or of none, are returned. Two
 * different groups at that shortest level mean no grouping at all.
 */
function group(entries: ZoneEntry[]): ZoneEntry[] {
  const first = entries[0];
  if (!first) return entries;
  let chosen = first.record.group;
  let depth = slashes(first.key);
  for (const entry of entries) {
    const d = slashes(entry.key);
    if (d < depth) {
      // As in CoreDNS: a shorter key without a group ends the search.
      if (entry.record.group === '') break;
      depth = d;
      chosen = entry.record.group;
    }
  }
  if (chosen === '') return entries;
  const kept: ZoneEntry[] = [];
  for (const entry of entries) {
    const own = entry.record.group;
    if (own === '') kept.push(entry);
    else if (slashes(entry.key) === depth && own !== chosen) return entries;
    else if (own === chosen) kept.push(entry);
  }
  return kept;
}

function slashes(key: string): number {
  let count = 0;
  for (const char of key) if (char === '/') count++;
  return count;
}
