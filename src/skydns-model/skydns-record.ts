import { isIP } from 'node:net';
import { MAX_NAME_OCTETS, isHostName, relativeName, wireNameProblem } from '../core/dns-name.js';
import { SrvlinkError } from '../core/errors.js';
import { canonicalAddress, mappedIpv4 } from '../core/ip-address.js';

/**
 * What a record's `host` holds, decided once when the record is read
 * (CoreDNS `msg.Service.HostType`): an IPv4 or IPv6 address, a name, or
 * nothing (a TXT-only record).
 */
export type SkydnsHostKind = 'ipv4' | 'ipv6' | 'name' | 'none';

/**
 * One SkyDNS record: the JSON value of an etcd key (CoreDNS
 * `plugin/etcd/msg/service.go`), validated and with CoreDNS's defaults
 * applied. Immutable.
 */
export interface SkydnsRecord {
  /** As written, trailing dot removed; `''` for a TXT-only record. */
  readonly host: string;
  readonly hostKind: SkydnsHostKind;
  /** The address A/AAAA records carry (IPv6 in canonical form; IPv4-mapped IPv6 as IPv4); undefined unless `host` is an IP. */
  readonly address: string | undefined;
  /** 0 when missing. */
  readonly port: number;
  /** Missing or 0 → 10 (`SKYDNS_RECORD_DEFAULTS`, CoreDNS plugin/etcd `priority`). */
  readonly priority: number;
  /** As written, 0 when missing; SRV answers count 0 as 100 (CoreDNS backend_lookup.go). */
  readonly weight: number;
  /** `''` when missing. */
  readonly text: string;
  /** Seconds; undefined when missing or 0, the answer then uses the default (300). */
  readonly ttl: number | undefined;
  /** Labels to strip from the left of a synthesized SRV/MX/NS target. */
  readonly targetstrip: number;
  /** `''` when missing. */
  readonly group: string;
  /** Also an MX record (priority becomes the preference). */
  readonly mail: boolean;
}

/**
 * What a missing or zero field stands for, the same for every reader and
 * writer: readers apply them (CoreDNS plugin/etcd/etcd.go `priority` and
 * `ttl`, backend_lookup.go's weight), writers write priority and weight out
 * so that SkyDNS, CoreDNS, srvlink and a person with etcdctl all see the
 * same record, whatever their own defaults.
 */
export const SKYDNS_RECORD_DEFAULTS = {
  /** A missing or 0 priority. */
  priority: 10,
  /** What a weight of 0 counts as in SRV shares. */
  weight: 100,
  /** Seconds an answer lives when the record has no `ttl`. */
  ttl: 300,
} as const;

/** RFC 2181 §8: a TTL is an unsigned 31-bit number. */
export const MAX_RECORD_TTL = 0x7fffffff;
/** A name has at most 127 labels (255 octets on the wire, RFC 1035 §2.3.4); stripping more means nothing. */
const MAX_TARGETSTRIP = 127;

const FIELDS = ['host', 'port', 'priority', 'weight', 'text', 'ttl', 'targetstrip', 'group', 'mail'] as const;
type Field = (typeof FIELDS)[number];

/**
 * Parse and validate the value stored under `key`: a string is the JSON text
 * etcd holds, anything else is taken as an already decoded JSON value (a
 * records file). Throws a `SrvlinkError` with code `ERR_SKYDNS_RECORD` naming
 * the key and what is wrong.
 *
 * Field names match case-insensitively when no exact match exists, as Go's
 * `encoding/json` does for CoreDNS; unknown fields are ignored and `null`
 * counts as missing, for the same reason. `host` may be missing only when
 * `text` is set (a TXT-only record, as CoreDNS allows).
 */
export function parseSkydnsRecord(key: string, value: unknown): SkydnsRecord {
  const fail = (problem: string): SrvlinkError =>
    new SrvlinkError('ERR_SKYDNS_RECORD', `cannot read skydns record at key "${key}": ${problem}`);

  // The key names the record (its segments reversed are the labels): a name that cannot go on the
  // wire is one bad record, skipped and counted, not a reply that fails for the whole service.
  const badKey = keyNameProblem(key);
  if (badKey !== undefined) throw fail(badKey);

  let decoded: unknown = value;
  if (typeof value === 'string') {
    try {
      decoded = JSON.parse(value);
    } catch (err) {
      throw fail(`value is not JSON (${(err as Error).message}): ${quote(value)}`);
    }
  }
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) {
    throw fail(`value must be a JSON object, got ${quote(decoded)}`);
  }
  const fields = pickFields(decoded as Record<string, unknown>);

  const integer = (field: Field, max: number): number => {
    const raw = fields[field];
    if (raw === undefined) return 0;
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0 || raw > max) {
      throw fail(`"${field}" must be an integer from 0 to ${max}, got ${quote(raw)}`);
    }
    return raw;
  };
  const string = (field: Field): string => {
    const raw = fields[field];
    if (raw === undefined) return '';
    if (typeof raw !== 'string') throw fail(`"${field}" must be a string, got ${quote(raw)}`);
    return raw;
  };

  const text = string('text');
  const rawHost = fields.host;
  if (rawHost !== undefined && typeof rawHost !== 'string') throw fail(`"host" must be a string, got ${quote(rawHost)}`);
  const host = relativeName(rawHost ?? '');
  let hostKind: SkydnsHostKind = 'none';
  let address: string | undefined;
  if (host === '') {
    // CoreDNS `shouldInclude`: only a TXT record may live without a host.
    if (text === '') throw fail('"host" is missing (only a record with "text" may omit it)');
  } else {
    const classified = classifyHost(host);
    if (classified === undefined) throw fail(`"host" must be an IP address or a valid DNS name, got ${quote(rawHost)}`);
    hostKind = classified.kind;
    address = classified.address;
  }

  const mail = fields.mail;
  if (mail !== undefined && typeof mail !== 'boolean') throw fail(`"mail" must be true or false, got ${quote(mail)}`);
  const ttl = integer('ttl', MAX_RECORD_TTL);
  const priority = integer('priority', 0xffff);

  return Object.freeze({
    host,
    hostKind,
    address,
    port: integer('port', 0xffff),
    priority: priority === 0 ? SKYDNS_RECORD_DEFAULTS.priority : priority,
    weight: integer('weight', 0xffff),
    text,
    ttl: ttl === 0 ? undefined : ttl,
    targetstrip: integer('targetstrip', MAX_TARGETSTRIP),
    group: string('group'),
    mail: mail ?? false,
  });
}

/**
 * Why the labels of `key` cannot make a DNS name, or undefined. Every
 * segment (a dot inside one makes more labels) must be 1-63 octets and the
 * whole at most 255 octets on the wire. The prefix's segments are counted
 * too: the store does not know where the prefix ends, and a name within a
 * few octets of the limit is refused a little early rather than served broken.
 */
function keyNameProblem(key: string): string | undefined {
  const labels = key.split('/').filter((segment) => segment !== '').flatMap((segment) => segment.split('.'));
  const problem = wireNameProblem(labels);
  switch (problem?.kind) {
    case undefined:
      return undefined;
    case 'emptyLabel':
      return `key segment ${quote(problem.label)} holds an empty label`;
    case 'longLabel':
      return `key segment ${quote(problem.label)} is not a DNS label: ${problem.octets} octets, at most 63`;
    case 'longName':
      return `the name of the key is ${problem.octets} octets, at most ${MAX_NAME_OCTETS}`;
  }
}

/** The known fields, exact name first, then a case-insensitive match (Go encoding/json); null → missing. */
function pickFields(object: Record<string, unknown>): Partial<Record<Field, unknown>> {
  const picked: Partial<Record<Field, unknown>> = {};
  const byLowerCase = new Map<string, unknown>();
  for (const [name, raw] of Object.entries(object)) {
    const lower = name.toLowerCase();
    if (!byLowerCase.has(lower)) byLowerCase.set(lower, raw);
  }
  for (const field of FIELDS) {
    const raw = Object.hasOwn(object, field) ? object[field] : byLowerCase.get(field);
    if (raw !== undefined && raw !== null) picked[field] = raw;
  }
  return picked;
}

/**
 * What a record's `host` is, as written (a trailing dot counts): an IP
 * address in the form A/AAAA records carry, a host name, or undefined when
 * it is neither. An IPv6 zone (`fe80::1%eth0`) means nothing on another
 * machine, so it is neither. Readers and writers decide with this alone.
 */
export function classifyHost(host: string): { kind: 'ipv4' | 'ipv6'; address: string } | { kind: 'name'; address: undefined } | undefined {
  const family = isIP(host);
  if (family === 4) return { kind: 'ipv4', address: host };
  if (family === 6) {
    if (host.includes('%')) return undefined;
    // Go's net.IP.To4 (CoreDNS HostType): an IPv4-mapped address (RFC 4291 §2.5.5.2) is an A record.
    const mapped = mappedIpv4(host);
    if (mapped !== undefined) return { kind: 'ipv4', address: mapped };
    // One spelling (RFC 5952), so that duplicates compare equal.
    return { kind: 'ipv6', address: canonicalAddress(host) };
  }
  return isHostName(host) ? { kind: 'name', address: undefined } : undefined;
}

function quote(value: unknown): string {
  let text: string;
  try {
    // A string is cut before it is quoted: a value may be a megabyte.
    text = JSON.stringify(typeof value === 'string' ? value.slice(0, 80) : value) ?? String(value);
  } catch {
    // Nested too deep to write back (JSON.parse takes any depth, JSON.stringify recurses).
    text = Array.isArray(value) ? 'an array nested too deep to show' : 'an object nested too deep to show';
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
