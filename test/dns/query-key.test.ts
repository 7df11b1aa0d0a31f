/**
 * The raw query key: what changes a reply is in it, the rest (ID, flags no
 * reply depends on, the payload size within one size class) is not; a query
 * of any other shape has none. And the wire reply cache keeps queries whose
 * keys share a hash apart: each gets its own reply, and eviction, a replaced
 * entry and an ended origin take the right one.
 */
import { describe, expect, it } from 'vitest';
import { createReply, decodeMessage, encodeMessage } from '../../src/dns/codec.js';
import { emptyQueryKey, readQueryKey, sameQuestion, type QueryKey } from '../../src/dns/query-key.js';
import { WireReplyCache, type ReplyOrigin } from '../../src/dns/wire-reply-cache.js';
import { rawQuery, type RawQuery } from '../helpers/raw-dns.js';

function keyOf(bytes: Buffer, transport: 'udp' | 'tcp' = 'udp'): QueryKey | undefined {
  const key = emptyQueryKey();
  return readQueryKey(bytes, transport, key) ? key : undefined;
}

/** Whether two queries have the same key: their heads and question bytes equal (the hash then equal too). */
function sameKey(a: Buffer, b: Buffer, transports: ['udp' | 'tcp', 'udp' | 'tcp'] = ['udp', 'udp']): boolean {
  const ka = keyOf(a, transports[0]);
  const kb = keyOf(b, transports[1]);
  if (ka === undefined || kb === undefined) throw new Error('no key');
  const same = ka.head === kb.head && sameQuestion(a.subarray(12, ka.questionEnd), b, kb);
  if (same) expect(ka.hash).toBe(kb.hash);
  return same;
}

const WWW: RawQuery = { name: 'www.key.test', type: 'A' };

describe('readQueryKey', () => {
  it.each<[string, RawQuery, RawQuery, boolean]>([
    ['another ID only', WWW, WWW, true],
    ['RD', WWW, { ...WWW, flags: 0 }, false],
    ['AD', WWW, { ...WWW, flags: 0x0120 }, false],
    ['CD', WWW, { ...WWW, flags: 0x0110 }, false],
    ['TC and RA of a query (no reply depends on them)', WWW, { ...WWW, flags: 0x0380 }, true],
    ['EDNS', WWW, { ...WWW, edns: { size: 1232 } }, false],
    ['DO', { ...WWW, edns: { size: 1232 } }, { ...WWW, edns: { size: 1232, do: true } }, false],
    ['EDNS sizes cut to the same limit (1232 and 4096)', { ...WWW, edns: { size: 1232 } }, { ...WWW, edns: { size: 4096 } }, true],
    ['EDNS sizes under 512 (512 and 100)', { ...WWW, edns: { size: 512 } }, { ...WWW, edns: { size: 100 } }, true],
    ['EDNS sizes of different limits (512 and 1000)', { ...WWW, edns: { size: 512 } }, { ...WWW, edns: { size: 1000 } }, false],
    ['the spelling of the name', WWW, { ...WWW, name: 'WWW.key.test' }, false],
    ['the type', WWW, { ...WWW, type: 'AAAA' }, false],
    ['the class', WWW, { ...WWW, class: 3 }, false],
  ])('%s: same key %s', (_what, a, b, same) => {
    expect(sameKey(rawQuery(1, a), rawQuery(2, b))).toBe(same);
  });

  it('tells the transports apart, and TCP ignores the EDNS size', () => {
    expect(sameKey(rawQuery(1, WWW), rawQuery(1, WWW), ['udp', 'tcp'])).toBe(false);
    expect(sameKey(rawQuery(1, { ...WWW, edns: { size: 512 } }), rawQuery(1, { ...WWW, edns: { size: 4096 } }), ['tcp', 'tcp'])).toBe(true);
  });

  it.each<[string, (q: Buffer) => Buffer]>([
    ['a response', (q) => (q.writeUInt16BE(0x8100, 2), q)],
    ['opcode STATUS', (q) => (q.writeUInt16BE(0x1100, 2), q)],
    ['two questions', (q) => (q.writeUInt16BE(2, 4), q)],
    ['an answer record', (q) => (q.writeUInt16BE(1, 6), q)],
    ['an authority record', (q) => (q.writeUInt16BE(1, 8), q)],
    ['cut in the name', (q) => q.subarray(0, 16)],
    ['cut in the question', (q) => q.subarray(0, q.length - 1)],
    ['a byte after the question', (q) => Buffer.concat([q, Buffer.from([0])])],
    ['a label over 63 (a pointer)', (q) => (q.writeUInt8(0xc0, 12), q)],
    ['a header only', (q) => q.subarray(0, 12)],
  ])('%s: no key', (_what, change) => {
    expect(keyOf(change(rawQuery(1, WWW)))).toBeUndefined();
  });

  it.each<[string, (q: Buffer) => Buffer]>([
    ['EDNS version 1', (q) => (q.writeUInt8(1, q.length - 5), q)],
    ['an EDNS option', (q) => Buffer.concat([(q.writeUInt16BE(4, q.length - 2), q), Buffer.from([0, 10, 0, 0])])],
    ['two additional records', (q) => (q.writeUInt16BE(2, 10), q)],
    ['an additional record that is no OPT', (q) => (q.writeUInt16BE(1, q.length - 10), q)],
  ])('EDNS: %s: no key', (_what, change) => {
    expect(keyOf(change(rawQuery(1, { ...WWW, edns: { size: 1232 } })))).toBeUndefined();
  });
});

/** Two names of one type whose UDP keys have the same hash (found by search: the hash has 32 bits). */
function collidingNames(): [string, string] {
  const seen = new Map<number, number>();
  // c000000.key.test, its digits written in place: a new query per name would make the search slow.
  const bytes = rawQuery(0, { name: 'c000000.key.test', type: 'A' });
  const key = emptyQueryKey();
  const name = (i: number): string => `c${String(i).padStart(6, '0')}.key.test`;
  for (let i = 0; i < 1_000_000; i++) {
    bytes.write(String(i).padStart(6, '0'), 14, 'latin1');
    readQueryKey(bytes, 'udp', key);
    const other = seen.get(key.hash);
    if (other !== undefined) return [name(other), name(i)];
    seen.set(key.hash, i);
  }
  throw new Error('no two names of one hash');
}

const CLIENT = { address: '127.0.0.1', port: 5353, transport: 'udp' } as const;

/** An origin that is fresh until `end()`. */
function endingOrigin(): ReplyOrigin & { end(): void } {
  let live = true;
  return { fresh: () => live, end: () => (live = false) };
}

describe('the wire reply cache, keys of one hash', () => {
  it('answers each query with its own reply, and evicts, replaces and ends the right one', () => {
    const [a, b] = collidingNames();
    const c = 'other.key.test';
    const query = (name: string, id = 7): Buffer => rawQuery(id, { name, type: 'A' });
    expect(keyOf(query(a))?.hash).toBe(keyOf(query(b))?.hash);
    // Each reply's origin, by the address it answers.
    const origins = new Map<string, ReturnType<typeof endingOrigin>>();
    const cache = new WireReplyCache({ origin: (reply) => origins.get(String(reply.answers[0]?.data)), maxEntries: 2, maxBytes: 1 << 20 });
    const store = (name: string, address: string): Buffer => {
      origins.set(address, endingOrigin());
      const reply = createReply(decodeMessage(query(name)), { answers: [{ name, type: 'A', class: 'IN', ttl: 60, data: address }] });
      const wire = encodeMessage(reply);
      cache.store(query(name), CLIENT, reply, wire);
      return wire;
    };
    const served = (name: string): Buffer | undefined => cache.lookup(query(name, 0x4242), CLIENT)?.wire;
    const withId = (wire: Buffer): Buffer => Buffer.concat([Buffer.from([0x42, 0x42]), wire.subarray(2)]);

    const wa = store(a, '192.0.2.1');
    const wb = store(b, '192.0.2.2');
    expect(cache.size).toBe(2);
    expect(served(a)).toEqual(withId(wa));
    expect(served(b)).toEqual(withId(wb));
    // Replaced: the new reply, one entry still.
    const wa2 = store(a, '192.0.2.3');
    expect(cache.size).toBe(2);
    expect(served(a)).toEqual(withId(wa2));
    expect(served(b)).toEqual(withId(wb));
    // Full at two: a third evicts the least recently used (a), not its neighbour of the same hash.
    const wc = store(c, '192.0.2.4');
    expect(cache.size).toBe(2);
    expect(served(a)).toBeUndefined();
    expect(served(b)).toEqual(withId(wb));
    expect(served(c)).toEqual(withId(wc));
    // Both of the hash again, the older first in their chain: b ends, a stays.
    const wa3 = store(a, '192.0.2.5');
    expect(served(c)).toBeUndefined();
    expect(cache.size).toBe(2);
    origins.get('192.0.2.2')?.end();
    expect(served(b)).toBeUndefined();
    expect(cache.size).toBe(1);
    expect(served(a)).toEqual(withId(wa3));
    cache.clear();
    expect(cache.size).toBe(0);
    expect(served(a)).toBeUndefined();
  });
});
