import { isIP } from 'node:net';
import { InvalidArgumentError } from '../core/errors.js';
import { canonicalName } from '../core/dns-name.js';
import { Rcode, createReply, type DnsMessage, type DnsRecord } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import { LocalAddresses } from './local-address.js';
import type { StubStats } from './stub-stats.js';

/**
 * The addresses a mapping's listener is reachable at. `0.0.0.0` (`::`)
 * stands for a listener on every address: each client gets the local
 * address it reached the stub at (a sidecar's clients live in other
 * containers, where 127.0.0.1 is their own loopback).
 */
export interface AliasAddresses {
  ipv4?: string;
  ipv6?: string;
}

export interface AliasHandlerOptions {
  /** TTL of alias answers, in seconds. Default `DEFAULT_ALIAS_TTL`. */
  ttl?: number;
  /** Counts answers in `aliasAnswers`. */
  stats?: Pick<StubStats, 'aliasAnswers'>;
  /** Where clients reach the stub, for wildcard addresses; default: a `LocalAddresses` of its own. */
  localAddresses?: LocalAddresses;
  /** Told of each answer that is the same for every client (no wildcard address in it): one a copy can stand in for while the table stands. */
  onFixedAnswer?: (reply: DnsMessage) => void;
}

/**
 * TTL of alias answers: 30 s. The address is fixed for the life of this
 * process, but the process is a container's, and containers come and go;
 * a short TTL keeps an app's resolver cache from outliving a restart with
 * other mappings by much.
 */
export const DEFAULT_ALIAS_TTL = 30;

/**
 * Answer the names of mapped services with their listener's address
 * (docs/architecture.md §4.1). Keys of `aliases` are compared canonically (RFC 4343:
 * case-insensitive, no trailing dot); they are canonicalized here too.
 *
 * For an alias name: A → `ipv4`, AAAA → `ipv6`, ANY → both (what exists);
 * a type with no address, or any other type, → NODATA (NOERROR and an empty
 * answer, RFC 2308 §2.2). Answers are authoritative (AA): srvlink owns these
 * names. The owner name is the question's name as asked, case preserved
 * (RFC 4343 §4.1). Other names go to `next`.
 *
 * Throws an `InvalidArgumentError` for an address that is not of its family, or a TTL
 * that is not an integer 0..2^31-1 (RFC 2181 §8).
 */
export function createAliasHandler(aliases: ReadonlyMap<string, AliasAddresses>, options: AliasHandlerOptions = {}): DnsHandler {
  const ttl = options.ttl ?? DEFAULT_ALIAS_TTL;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) {
    throw new InvalidArgumentError(`invalid alias ttl "${ttl}": expected an integer number of seconds 0-2147483647`);
  }
  const localAddresses = options.localAddresses ?? new LocalAddresses();
  const table = new Map<string, AliasAddresses>();
  for (const [name, addresses] of aliases) {
    if (addresses.ipv4 !== undefined && isIP(addresses.ipv4) !== 4) {
      throw new InvalidArgumentError(`invalid address "${addresses.ipv4}" for alias "${name}": expected an IPv4 address`);
    }
    if (addresses.ipv6 !== undefined && isIP(addresses.ipv6) !== 6) {
      throw new InvalidArgumentError(`invalid address "${addresses.ipv6}" for alias "${name}": expected an IPv6 address`);
    }
    table.set(canonicalName(name), { ...addresses });
  }

  return {
    name: 'alias',
    async handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      const query = request.message;
      const question = query.questions[0];
      const addresses = question === undefined ? undefined : table.get(canonicalName(question.name));
      if (question === undefined || addresses === undefined) return next();
      const answers: DnsRecord[] = [];
      let fixed = true;
      // dns-packet decodes QTYPE 255 as 'ANY', which its RecordType leaves out; RFC 8482 lets
      // an answer to ANY hold any subset, so it gets the addresses there are.
      const type: string = question.type;
      const wantA = type === 'A' || type === 'ANY';
      const wantAaaa = type === 'AAAA' || type === 'ANY';
      if (wantA && addresses.ipv4 !== undefined) {
        fixed &&= !isWildcard(addresses.ipv4);
        answers.push({ name: question.name, type: 'A', class: 'IN', ttl, data: await reached(addresses.ipv4, request, localAddresses) });
      }
      if (wantAaaa && addresses.ipv6 !== undefined) {
        fixed &&= !isWildcard(addresses.ipv6);
        answers.push({ name: question.name, type: 'AAAA', class: 'IN', ttl, data: await reached(addresses.ipv6, request, localAddresses) });
      }
      if (options.stats) options.stats.aliasAnswers += 1;
      // RA: the stub recurses for its clients (RFC 1035 §4.1.1), even if this answer needed none.
      const reply = createReply(query, { rcode: Rcode.NOERROR, flags: { aa: true, ra: true }, answers });
      if (fixed) options.onFixedAnswer?.(reply);
      return reply;
    },
  };
}

const isWildcard = (address: string): boolean => address === '0.0.0.0' || address === '::';

/** `address`, or for a wildcard the local address the client reached, of that family (loopback when it reached another). */
async function reached(address: string, request: DnsRequest, localAddresses: LocalAddresses): Promise<string> {
  if (!isWildcard(address)) return address;
  const family = address === '0.0.0.0' ? 4 : 6;
  const local = await localAddresses.of(request.client);
  return local !== undefined && isIP(local) === family ? local : family === 4 ? '127.0.0.1' : '::1';
}
