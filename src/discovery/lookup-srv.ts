import { isIP } from 'node:net';
import { DnsQueryError } from '../core/errors.js';
import { canonicalName } from '../core/dns-name.js';
import { Rcode, rcodeName, type DnsMessage, type DnsRecord, type RecordType } from '../dns/codec.js';

/** What SRV lookup needs of a DNS client (`DnsClient` fits); a seam for tests. */
export interface Resolver {
  query(name: string, type: RecordType, options?: { signal?: AbortSignal }): Promise<DnsMessage>;
}

/** Where a target's addresses came from. */
export type AddressSource = 'additional' | 'lookup' | 'literal' | 'none';

/** One SRV record with the addresses of its target. */
export interface SrvTarget {
  priority: number;
  weight: number;
  port: number;
  /** Target host name, fully qualified, as the server sent it. */
  target: string;
  addresses: string[];
  addressSource: AddressSource;
}

export interface SrvLookup {
  name: string;
  /** `nxdomain`: the name does not exist; `nodata`: it exists without SRV records. Both are authoritative "no backends". */
  status: 'found' | 'nxdomain' | 'nodata';
  targets: SrvTarget[];
  /** Seconds the answer may be cached: the smallest TTL among the records used (the SOA's for negative answers, RFC 2308). */
  ttl: number;
}

/**
 * Resolve an SRV name into targets with addresses. Addresses come from the
 * additional section matched **by owner name** (never by position, RFC 2782
 * leaves order unspecified), else from A and AAAA queries. Targets of `.`
 * mean "decidedly not available here" (RFC 2782) and are left out; records
 * with port 0 are returned without addresses (nothing looked up for them).
 * Throws `DnsQueryError` when no server gave a usable answer.
 */
export async function lookupSrv(resolver: Resolver, name: string, options: { signal?: AbortSignal } = {}): Promise<SrvLookup> {
  const fqdn = name.endsWith('.') ? name : `${name}.`;
  const response = await resolver.query(fqdn, 'SRV', options);
  if (response.rcode === Rcode.NXDOMAIN) return { name: fqdn, status: 'nxdomain', targets: [], ttl: negativeTtl(response) };
  if (response.rcode !== Rcode.NOERROR) {
    throw new DnsQueryError('ERR_DNS_SERVER_FAILURE', `cannot resolve "${fqdn}" SRV: server answered ${rcodeName(response.rcode)}`, {
      rcode: response.rcode,
    });
  }
  const owner = canonicalName(fqdn);
  const srvRecords = response.answers.filter(
    (rr): rr is Extract<DnsRecord, { type: 'SRV' }> => rr.type === 'SRV' && canonicalName(rr.name) === owner,
  );
  if (srvRecords.length === 0) return { name: fqdn, status: 'nodata', targets: [], ttl: negativeTtl(response) };

  const glue = new Map<string, { addresses: string[]; ttl: number }>();
  for (const rr of response.additionals) {
    if (rr.type !== 'A' && rr.type !== 'AAAA') continue;
    const key = canonicalName(rr.name);
    const entry = glue.get(key) ?? { addresses: [], ttl: Number.POSITIVE_INFINITY };
    if (!entry.addresses.includes(rr.data)) entry.addresses.push(rr.data);
    entry.ttl = Math.min(entry.ttl, rr.ttl ?? 0);
    glue.set(key, entry);
  }

  let ttl = Math.min(...srvRecords.map((rr) => rr.ttl ?? 0));
  const lookups = new Map<string, Promise<{ addresses: string[]; ttl: number }>>();
  const targets = await Promise.all(
    srvRecords
      .filter((rr) => canonicalName(rr.data.target) !== '')
      .map(async (rr): Promise<SrvTarget> => {
        const target = rr.data.target.endsWith('.') ? rr.data.target : `${rr.data.target}.`;
        const base = { priority: rr.data.priority ?? 0, weight: rr.data.weight ?? 0, port: rr.data.port, target };
        // Port 0 is nothing to dial: not worth an address lookup (the caller skips the record).
        if (base.port === 0) return { ...base, addresses: [], addressSource: 'none' };
        if (isIP(canonicalName(target)) !== 0) return { ...base, addresses: [canonicalName(target)], addressSource: 'literal' };
        const key = canonicalName(target);
        const fromGlue = glue.get(key);
        if (fromGlue) {
          ttl = Math.min(ttl, fromGlue.ttl);
          return { ...base, addresses: fromGlue.addresses, addressSource: 'additional' };
        }
        let pending = lookups.get(key);
        if (!pending) {
          pending = lookupAddresses(resolver, target, options);
          lookups.set(key, pending);
        }
        const found = await pending;
        if (found.addresses.length > 0) ttl = Math.min(ttl, found.ttl);
        return { ...base, addresses: found.addresses, addressSource: found.addresses.length > 0 ? 'lookup' : 'none' };
      }),
  );
  return { name: fqdn, status: 'found', targets, ttl: Number.isFinite(ttl) ? ttl : 0 };
}

/** A and AAAA of a target, asked in parallel; a failed query contributes nothing. */
async function lookupAddresses(resolver: Resolver, target: string, options: { signal?: AbortSignal }): Promise<{ addresses: string[]; ttl: number }> {
  const owner = canonicalName(target);
  const results = await Promise.allSettled((['A', 'AAAA'] as const).map((type) => resolver.query(target, type, options)));
  const addresses: string[] = [];
  let ttl = Number.POSITIVE_INFINITY;
  const names = new Set([owner]);
  for (const result of results) {
    if (result.status !== 'fulfilled' || result.value.rcode !== Rcode.NOERROR) continue;
    // Follow a CNAME chain inside the answer by owner name.
    for (const rr of result.value.answers) {
      if (rr.type === 'CNAME' && names.has(canonicalName(rr.name))) names.add(canonicalName(rr.data));
    }
    for (const rr of result.value.answers) {
      if ((rr.type === 'A' || rr.type === 'AAAA') && names.has(canonicalName(rr.name)) && !addresses.includes(rr.data)) {
        addresses.push(rr.data);
        ttl = Math.min(ttl, rr.ttl ?? 0);
      }
    }
  }
  return { addresses, ttl };
}

/** RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM); 0 without an SOA. */
function negativeTtl(response: DnsMessage): number {
  const soa = response.authorities.find((rr) => rr.type === 'SOA');
  if (!soa || soa.type !== 'SOA') return 0;
  return Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
}
