import { canonicalName, isInZone, relativeName } from '../core/dns-name.js';
import { Rcode } from '../dns/codec.js';
import type { DnsQuestion, DnsRecord } from '../dns/codec.js';
import { DEFAULT_SKYDNS_PREFIX, keyToName } from '../skydns-model/key-path.js';
import { SKYDNS_RECORD_DEFAULTS, type SkydnsRecord } from '../skydns-model/skydns-record.js';
import { findZoneEntries } from './find-zone-entries.js';
import type { ZoneEntry, ZoneStore } from './zone-store.js';

/** What `answerZoneQuery` needs besides the question. */
export interface ZoneQueryOptions {
  /** The zone the question falls in, e.g. `skydns.local.` (the longest configured match). */
  zone: string;
  /** etcd key prefix of the SkyDNS tree; default `/skydns`. */
  prefix?: string;
  store: ZoneStore;
  /** The current time, ms since the epoch: leases are measured against it, the SOA serial derives from it. */
  now: number;
  /**
   * SOA TTL and MINIMUM in seconds, so the negative-caching TTL
   * (RFC 2308 §5: min(SOA TTL, MINIMUM)); default 30, CoreDNS's etcd `MinTTL`.
   */
  minTtl?: number;
}

/** The parts of a reply the rules decide; the handler wraps them into a message. */
export interface ZoneAnswer {
  rcode: number;
  /** Authoritative answer: always set for a question inside the zone. */
  aa: boolean;
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

/** CoreDNS plugin/etcd/etcd.go `MinTTL`. */
const DEFAULT_MIN_TTL = 30;
/** CoreDNS backend_lookup.go gives up after 8 CNAMEs (`len(previousRecords) > 7`). */
const MAX_CNAMES = 8;
/** SOA timers as CoreDNS backend_lookup.go `SOA` sets them. */
const SOA_REFRESH = 7200;
const SOA_RETRY = 1800;
const SOA_EXPIRE = 86400;

/**
 * Answer one question from the SkyDNS records in `store`, by the rules of
 * CoreDNS's etcd plugin (plugin/etcd, plugin/backend_lookup.go), so a cluster
 * can swap one for the other on the same data (docs/architecture.md §4.5). Pure: no I/O,
 * time comes from `options.now`.
 *
 * - a name answers from every record in the subtree under its key (the exact
 *   key only when the subtree is empty); `*` or `any` as a label matches any label;
 * - SRV: weight = floor(100 × w / Σw over the same priority), at least 1; an IP
 *   host makes the record's own name (minus `targetstrip` labels) the target, with
 *   A/AAAA glue; a name host is the target, with its addresses when it is in the zone;
 * - A/AAAA: every IP host of that family, once; name hosts become CNAMEs, followed
 *   inside the zone; TXT from `text`; MX from records with `mail`; `group` as msg.Group;
 * - TTL: the record's, else 300, never beyond what is left of the key's lease;
 * - no key: NXDOMAIN; a key without data of the type: NODATA; both with the SOA;
 *   SOA and NS at the apex (`ns.dns.<zone>`, `hostmaster.<zone>`).
 *
 * Owner names are the question's name as asked (trailing dot dropped, as
 * dns-packet decodes names); names built from keys are lower-case.
 * A question outside `zone` gets REFUSED, not authoritative.
 */
export function answerZoneQuery(question: DnsQuestion, options: ZoneQueryOptions): ZoneAnswer {
  const zone = canonicalName(options.zone);
  if (!isInZone(question.name, zone)) {
    return { rcode: Rcode.REFUSED, aa: false, answers: [], authorities: [], additionals: [] };
  }
  const lookup: Lookup = {
    zone,
    prefix: options.prefix ?? DEFAULT_SKYDNS_PREFIX,
    store: options.store,
    now: options.now,
    minTtl: options.minTtl ?? DEFAULT_MIN_TTL,
  };
  const owner = ownerName(question.name);
  const atApex = canonicalName(question.name) === zone;

  const result = answerByType(lookup, question, owner, atApex);
  if (result.answers.length > 0) {
    return { rcode: Rcode.NOERROR, aa: true, answers: result.answers, authorities: [], additionals: unique(result.additionals) };
  }
  // RFC 2308 §2.1/§2.2: NXDOMAIN when the name has nothing at or below it, NODATA
  // otherwise; both carry the SOA so resolvers can cache the negative answer.
  // The apex always exists (it owns the SOA), even in an empty zone.
  const exists = atApex || result.exists;
  return {
    rcode: exists ? Rcode.NOERROR : Rcode.NXDOMAIN,
    aa: true,
    answers: [],
    authorities: [soaRecord(lookup, zone || '.')],
    additionals: [],
  };
}

interface Lookup {
  /** Canonical: lower-case, no trailing dot. */
  zone: string;
  prefix: string;
  store: ZoneStore;
  now: number;
  minTtl: number;
}

/** Whether the name has records at or below it, and the records that answer. */
interface Collected {
  exists: boolean;
  records: DnsRecord[];
}

interface TypedResult {
  exists: boolean;
  answers: DnsRecord[];
  additionals: DnsRecord[];
}

function answerByType(lookup: Lookup, question: DnsQuestion, owner: string, atApex: boolean): TypedResult {
  const name = question.name;
  const chain = new Set([canonicalName(name)]);
  switch (question.type) {
    case 'A':
    case 'AAAA': {
      const found = addresses(lookup, name, owner, question.type, chain);
      return { exists: found.exists, answers: found.records, additionals: [] };
    }
    case 'TXT': {
      const found = texts(lookup, name, owner, chain);
      return { exists: found.exists, answers: found.records, additionals: [] };
    }
    case 'SRV':
      return services(lookup, name, owner);
    case 'MX':
      return mailExchangers(lookup, name, owner);
    case 'CNAME':
      return aliases(lookup, name, owner);
    case 'PTR':
      return pointers(lookup, name, owner);
    case 'NS':
      if (atApex) return nameServers(lookup, owner);
      break;
    case 'SOA':
      // Only the apex owns the SOA; below it CoreDNS hands out the apex SOA under
      // the wrong owner, we answer NODATA/NXDOMAIN with the SOA in authority instead.
      if (atApex) return { exists: true, answers: [soaRecord(lookup, owner)], additionals: [] };
      break;
    default:
      break;
  }
  // Types SkyDNS data cannot hold: only whether the name exists matters (CoreDNS
  // handler.go does a fake A lookup for the same purpose).
  return { exists: findZoneEntries(lookup, name, { exact: false, txt: true }).exists, answers: [], additionals: [] };
}

// --- per type ---------------------------------------------------------------

/**
 * A or AAAA records for `name` (CoreDNS `plugin.A` / `plugin.AAAA`): every IP
 * host of the family once, name hosts as CNAMEs. At the apex, records under
 * `apex.dns.<zone>` take precedence (CoreDNS `checkForApex`).
 */
function addresses(lookup: Lookup, name: string, owner: string, type: 'A' | 'AAAA', chain: ReadonlySet<string>): Collected {
  let found = findZoneEntries(lookup, name, { exact: false, txt: false });
  if (canonicalName(name) === lookup.zone) {
    const apex = findZoneEntries(lookup, join('apex.dns', lookup.zone), { exact: false, txt: false });
    found = apex.exists ? { exists: true, entries: apex.entries } : { exists: true, entries: found.entries };
  }
  const family = type === 'A' ? 'ipv4' : 'ipv6';
  const records: DnsRecord[] = [];
  const seen = new Set<string>();
  for (const entry of found.entries) {
    const { record } = entry;
    if (record.hostKind === 'name') {
      if (seen.has(`cname:${canonicalName(record.host)}`)) continue;
      seen.add(`cname:${canonicalName(record.host)}`);
      records.push(
        ...follow(lookup, name, owner, record.host, ttlOf(lookup, entry), chain, (target, next) =>
          addresses(lookup, target, target, type, next).records,
        ),
      );
    } else if (record.hostKind === family && record.address !== undefined && !seen.has(record.address)) {
      seen.add(record.address);
      records.push({ name: owner, type, class: 'IN', ttl: ttlOf(lookup, entry), data: record.address });
    }
  }
  return { exists: found.exists, records };
}

/** TXT records for `name` (CoreDNS `plugin.TXT`): each distinct `text`; name hosts without text as CNAMEs. */
function texts(lookup: Lookup, name: string, owner: string, chain: ReadonlySet<string>): Collected {
  const found = findZoneEntries(lookup, name, { exact: false, txt: true });
  const records: DnsRecord[] = [];
  const seen = new Set<string>();
  for (const entry of found.entries) {
    const { record } = entry;
    if (record.text !== '') {
      if (seen.has(`text:${record.text}`)) continue;
      seen.add(`text:${record.text}`);
      records.push({ name: owner, type: 'TXT', class: 'IN', ttl: ttlOf(lookup, entry), data: split255(record.text) });
    } else if (record.hostKind === 'name') {
      if (seen.has(`cname:${canonicalName(record.host)}`)) continue;
      seen.add(`cname:${canonicalName(record.host)}`);
      records.push(
        ...follow(lookup, name, owner, record.host, ttlOf(lookup, entry), chain, (target, next) =>
          texts(lookup, target, target, next).records,
        ),
      );
    }
  }
  return { exists: found.exists, records };
}

/**
 * One CNAME step (CoreDNS backend_lookup.go): `owner` CNAME `target`. Inside
 * the zone the target is resolved from the zone itself and the CNAME is kept
 * only when that finds something; outside, the CNAME alone is the answer and
 * the resolver follows it (RFC 1034 §4.3.2). Loops and chains longer than 8
 * are cut.
 */
function follow(
  lookup: Lookup,
  name: string,
  owner: string,
  target: string,
  ttl: number,
  chain: ReadonlySet<string>,
  resolve: (target: string, chain: ReadonlySet<string>) => DnsRecord[],
): DnsRecord[] {
  const canonical = canonicalName(target);
  // x CNAME x is a loop; so is w.x for x, since the subtree of x already holds w.x.
  if (isInZone(canonical, canonicalName(name))) return [];
  if (chain.has(canonical) || chain.size > MAX_CNAMES) return [];
  const cname: DnsRecord = { name: owner, type: 'CNAME', class: 'IN', ttl, data: target };
  if (!isInZone(canonical, lookup.zone)) return [cname];
  const rest = resolve(target, new Set([...chain, canonical]));
  return rest.length > 0 ? [cname, ...rest] : [];
}

/** SRV records (CoreDNS `plugin.SRV`). */
function services(lookup: Lookup, name: string, owner: string): TypedResult {
  const found = findZoneEntries(lookup, name, { exact: false, txt: false });
  // Σw per priority; weight 0 counts as 100 (backend_lookup.go).
  const totals = new Map<number, number>();
  for (const { record } of found.entries) {
    totals.set(record.priority, (totals.get(record.priority) ?? 0) + effectiveWeight(record));
  }
  const answers: DnsRecord[] = [];
  const additionals: DnsRecord[] = [];
  const seen = new Set<string>();
  for (const entry of found.entries) {
    const { record } = entry;
    const ttl = ttlOf(lookup, entry);
    const weight = srvWeight(effectiveWeight(record), totals.get(record.priority) ?? 0);
    const target = targetOf(lookup, entry);
    if (record.hostKind === 'name') {
      answers.push(srvRecord(owner, ttl, record, weight, target));
      if (!seen.has(`lookup:${canonicalName(target)}`)) {
        seen.add(`lookup:${canonicalName(target)}`);
        additionals.push(...addressesOf(lookup, target));
      }
    } else if (record.address !== undefined) {
      if (!seen.has(`srv:${target}:${record.port}`)) {
        seen.add(`srv:${target}:${record.port}`);
        answers.push(srvRecord(owner, ttl, record, weight, target));
      }
      additionals.push(glue(target, record, ttl));
    }
  }
  return { exists: found.exists, answers, additionals };
}

/** MX records from records with `mail: true`, priority as preference (CoreDNS `plugin.MX`). */
function mailExchangers(lookup: Lookup, name: string, owner: string): TypedResult {
  const found = findZoneEntries(lookup, name, { exact: false, txt: false });
  const answers: DnsRecord[] = [];
  const additionals: DnsRecord[] = [];
  const seen = new Set<string>();
  for (const entry of found.entries) {
    const { record } = entry;
    if (!record.mail) continue;
    const ttl = ttlOf(lookup, entry);
    const target = targetOf(lookup, entry);
    if (seen.has(`mx:${target}:${record.priority}`)) continue;
    seen.add(`mx:${target}:${record.priority}`);
    answers.push({ name: owner, type: 'MX', class: 'IN', ttl, data: { preference: record.priority, exchange: target } });
    if (record.hostKind === 'name') additionals.push(...addressesOf(lookup, target));
    else if (record.address !== undefined) additionals.push(glue(target, record, ttl));
  }
  return { exists: found.exists, answers, additionals };
}

/** The CNAME stored at exactly this name (CoreDNS `plugin.CNAME`, an exact lookup). */
function aliases(lookup: Lookup, name: string, owner: string): TypedResult {
  const found = findZoneEntries(lookup, name, { exact: true, txt: false });
  const entry = found.entries.find((candidate) => candidate.record.hostKind === 'name');
  const answers: DnsRecord[] = entry
    ? [{ name: owner, type: 'CNAME', class: 'IN', ttl: ttlOf(lookup, entry), data: entry.record.host }]
    : [];
  return { exists: found.exists, answers, additionals: [] };
}

/** PTR records from name hosts at exactly this name (CoreDNS `plugin.PTR`; useful in a reverse zone). */
function pointers(lookup: Lookup, name: string, owner: string): TypedResult {
  const found = findZoneEntries(lookup, name, { exact: true, txt: false });
  const answers: DnsRecord[] = [];
  const seen = new Set<string>();
  for (const entry of found.entries) {
    const { record } = entry;
    if (record.hostKind !== 'name' || seen.has(canonicalName(record.host))) continue;
    seen.add(canonicalName(record.host));
    answers.push({ name: owner, type: 'PTR', class: 'IN', ttl: ttlOf(lookup, entry), data: record.host });
  }
  return { exists: found.exists, answers, additionals: [] };
}

/**
 * NS at the apex from the records under `ns.dns.<zone>` (CoreDNS `plugin.NS`):
 * an IP host names the server after its key, with glue. Where CoreDNS fails
 * the query on a name host, we take the name as the server.
 */
function nameServers(lookup: Lookup, owner: string): TypedResult {
  const found = findZoneEntries(lookup, join('ns.dns', lookup.zone), { exact: false, txt: false });
  const answers: DnsRecord[] = [];
  const additionals: DnsRecord[] = [];
  const seen = new Set<string>();
  for (const entry of found.entries) {
    const { record } = entry;
    const ttl = ttlOf(lookup, entry);
    const target = targetOf(lookup, entry);
    if (!seen.has(canonicalName(target))) {
      seen.add(canonicalName(target));
      answers.push({ name: owner, type: 'NS', class: 'IN', ttl, data: target });
      if (record.hostKind === 'name') additionals.push(...addressesOf(lookup, target));
    }
    if (record.address !== undefined) additionals.push(glue(target, record, ttl));
  }
  return { exists: true, answers, additionals };
}

/** The zone's SOA (CoreDNS `plugin.SOA`), owned by `owner`; TTL and MINIMUM are `minTtl`. */
function soaRecord(lookup: Lookup, owner: string): DnsRecord {
  return {
    name: owner,
    type: 'SOA',
    class: 'IN',
    ttl: lookup.minTtl,
    data: {
      mname: join('ns.dns', lookup.zone),
      rname: join('hostmaster', lookup.zone),
      // Like CoreDNS: the serial is the time in seconds (RFC 1982 arithmetic copes with the wrap).
      serial: Math.floor(lookup.now / 1000) >>> 0,
      refresh: SOA_REFRESH,
      retry: SOA_RETRY,
      expire: SOA_EXPIRE,
      minimum: lookup.minTtl,
    },
  };
}

// --- helpers ------------------------------------------------------------------

/** Weight 0 (or missing) counts as 100 when shares are computed (backend_lookup.go). */
function effectiveWeight(record: SkydnsRecord): number {
  return record.weight === 0 ? SKYDNS_RECORD_DEFAULTS.weight : record.weight;
}

/**
 * A record's SRV weight: its percentage of the weights at its priority,
 * floored, at least 1 (CoreDNS backend_lookup.go `SRV`). Computed in integers:
 * CoreDNS's float `100/Σw*w` can land one below (97 of 97 gives 99 there).
 */
function srvWeight(weight: number, total: number): number {
  if (total <= 0) return 1;
  return Math.max(1, Math.floor((100 * weight) / total));
}

/**
 * The SRV/MX/NS target of a record (CoreDNS `NewSRV` with `targetStrip`): the
 * host when it is a name, else the record's own name read back from its key;
 * in both cases minus `targetstrip` labels from the left, unless that would
 * leave nothing (then unchanged, as CoreDNS does).
 */
function targetOf(lookup: Lookup, entry: ZoneEntry): string {
  const { record } = entry;
  const name = record.hostKind === 'name' ? record.host : relativeName(keyToName(entry.key, lookup.prefix));
  if (record.targetstrip === 0) return name;
  const labels = name.split('.');
  return record.targetstrip >= labels.length ? name : labels.slice(record.targetstrip).join('.');
}

function srvRecord(owner: string, ttl: number, record: SkydnsRecord, weight: number, target: string): DnsRecord {
  return { name: owner, type: 'SRV', class: 'IN', ttl, data: { priority: record.priority, weight, port: record.port, target } };
}

function glue(target: string, record: SkydnsRecord, ttl: number): DnsRecord {
  const type = record.hostKind === 'ipv6' ? 'AAAA' : 'A';
  return { name: target, type, class: 'IN', ttl, data: record.address ?? '' };
}

/**
 * The in-zone addresses of a target for the additional section (CNAMEs on the
 * way included, as CoreDNS adds them). CoreDNS looks up A only here; AAAA too
 * costs nothing from memory. Targets outside the zone get nothing: we are no
 * recursor, the client resolves them.
 */
function addressesOf(lookup: Lookup, target: string): DnsRecord[] {
  if (!isInZone(target, lookup.zone)) return [];
  const chain = new Set([canonicalName(target)]);
  return [...addresses(lookup, target, target, 'A', chain).records, ...addresses(lookup, target, target, 'AAAA', chain).records];
}

/**
 * Seconds a record may be cached: its `ttl`, else 300, and never beyond what
 * is left of its key's lease (CoreDNS etcd.go `TTL` meant this but reads the
 * lease ID). A lease already over gives 0: the store, not the clock, says
 * whether the key is gone.
 */
function ttlOf(lookup: Lookup, entry: ZoneEntry): number {
  const ttl = entry.record.ttl ?? SKYDNS_RECORD_DEFAULTS.ttl;
  if (entry.expiresAt === undefined) return ttl;
  const left = Math.floor((entry.expiresAt - lookup.now) / 1000);
  return Math.max(0, Math.min(ttl, left));
}

/** TXT character-strings are at most 255 octets each (RFC 1035 §3.3.14); longer text is split (CoreDNS `split255`). */
function split255(text: string): string | Buffer[] {
  const bytes = Buffer.from(text);
  if (bytes.length <= 255) return text;
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += 255) chunks.push(bytes.subarray(offset, offset + 255));
  return chunks;
}

/** The same record twice in a section says nothing more (RFC 2181 §5: an RRset holds no duplicates). */
function unique(records: DnsRecord[]): DnsRecord[] {
  const seen = new Set<string>();
  return records.filter((record) => {
    const id = `${canonicalName(record.name)}|${record.type}|${JSON.stringify(record.data)}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

function join(label: string, zone: string): string {
  return zone === '' ? label : `${label}.${zone}`;
}

/** The question's name as asked, without the trailing dot dns-packet leaves off too. */
function ownerName(name: string): string {
  return name.length > 1 && name.endsWith('.') ? name.slice(0, -1) : name;
}
