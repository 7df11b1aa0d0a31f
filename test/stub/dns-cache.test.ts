import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { Rcode, createMessage, createReply, type DnsMessage, type DnsRecord } from '../../src/dns/codec.js';
import { cachedReply } from '../../src/stub/cache-handler.js';
import { DnsCache, STALE_TTL, type DnsCacheOptions } from '../../src/stub/dns-cache.js';

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function query(name: string, type: 'A' | 'AAAA' | 'TXT' = 'A', extra: { id?: number; do?: boolean; cd?: boolean } = {}): DnsMessage {
  return createMessage({
    id: extra.id ?? 1,
    flags: { rd: true, cd: extra.cd ?? false },
    questions: [{ name, type, class: 'IN' }],
    ...(extra.do === undefined ? {} : { edns: { udpPayloadSize: 4096, version: 0, dnssecOk: extra.do } }),
  });
}

function a(name: string, ttl: number, data = '192.0.2.1'): DnsRecord {
  return { name, type: 'A', class: 'IN', ttl, data };
}

function soa(zone: string, ttl: number, minimum: number): DnsRecord {
  return {
    name: zone,
    type: 'SOA',
    class: 'IN',
    ttl,
    data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum },
  };
}

function response(q: DnsMessage, fields: Partial<DnsMessage> = {}): DnsMessage {
  return createReply(q, { flags: { ra: true, aa: true }, ...fields });
}

function ttls(message: DnsMessage | undefined): number[] {
  return [...(message?.answers ?? []), ...(message?.authorities ?? [])].map((record) => record.ttl ?? -1);
}

/** The reply the cache handler makes of what `get` (`getStale`) found: the cache keeps responses, the handler makes replies. */
function get(cache: DnsCache, q: DnsMessage): DnsMessage | undefined {
  const found = cache.get(q);
  return found && cachedReply(q, found);
}

function getStale(cache: DnsCache, q: DnsMessage): DnsMessage | undefined {
  const found = cache.getStale(q);
  return found && cachedReply(q, found);
}

function cacheWith(options: DnsCacheOptions = {}): { cache: DnsCache; advance: (ms: number) => void } {
  const c = clock();
  return { cache: new DnsCache({ now: c.now, ...options }), advance: c.advance };
}

describe('DnsCache', () => {
  describe('what is kept, and for how long', () => {
    const q = query('www.example.com');
    it.each<[string, DnsMessage, number | undefined]>([
      ['positive: smallest TTL of answer and authority', response(q, { answers: [a('www.example.com', 300), a('www.example.com', 120)], authorities: [soa('example.com', 60, 3600)] }), 60],
      ['positive: one record', response(q, { answers: [a('www.example.com', 300)] }), 300],
      ['positive: capped at maxTtl (1 day)', response(q, { answers: [a('www.example.com', 7 * 86_400)] }), 86_400],
      ['positive: TTL 0 is not kept (RFC 1035 §3.2.1)', response(q, { answers: [a('www.example.com', 0)] }), undefined],
      ['NXDOMAIN: SOA MINIMUM below its TTL', response(q, { rcode: Rcode.NXDOMAIN, authorities: [soa('example.com', 3600, 60)] }), 60],
      ['NXDOMAIN: SOA TTL below its MINIMUM', response(q, { rcode: Rcode.NXDOMAIN, authorities: [soa('example.com', 45, 900)] }), 45],
      ['NXDOMAIN: capped at 3 h (RFC 2308 §5)', response(q, { rcode: Rcode.NXDOMAIN, authorities: [soa('example.com', 86_400, 86_400)] }), 10_800],
      ['NXDOMAIN without SOA: not kept', response(q, { rcode: Rcode.NXDOMAIN }), undefined],
      ['NODATA: per the SOA', response(q, { authorities: [soa('example.com', 600, 120)] }), 120],
      ['NODATA without SOA (a referral): not kept', response(q, { authorities: [{ name: 'example.com', type: 'NS', class: 'IN', ttl: 600, data: 'ns.example.com' }] }), undefined],
      ['SERVFAIL: never kept', response(q, { rcode: Rcode.SERVFAIL }), undefined],
      ['REFUSED: never kept', response(q, { rcode: Rcode.REFUSED }), undefined],
      ['SERVFAIL with an SOA: never kept', response(q, { rcode: Rcode.SERVFAIL, authorities: [soa('example.com', 600, 600)] }), undefined],
      ['truncated: never kept', response(q, { answers: [a('www.example.com', 300)], flags: { aa: true, tc: true, rd: true, ra: true, ad: false, cd: false } }), undefined],
    ])('%s', (_title, res, expected) => {
      const { cache, advance } = cacheWith();
      expect(cache.set(q, res)).toBe(expected !== undefined);
      if (expected === undefined) {
        expect(get(cache, q)).toBeUndefined();
        expect(cache.size).toBe(0);
        return;
      }
      // Fresh until exactly `expected` seconds have passed, then gone.
      advance(expected * 1000 - 1);
      const hit = get(cache, q);
      expect(hit).toBeDefined();
      expect(Math.min(...ttls(hit))).toBe(1);
      advance(1);
      expect(get(cache, q)).toBeUndefined();
    });
  });

  it.each([
    // Every record says at most the entry's lifetime (120 s here): no client keeps a record
    // longer than the stub itself would.
    [0, [120, 120]],
    [999, [120, 120]],
    [1000, [119, 119]],
    [10_500, [110, 110]],
    [119_999, [1, 1]],
  ])('after %i ms in the cache, TTLs are decreased by whole seconds: %j', (elapsed, expected) => {
    const { cache, advance } = cacheWith();
    const q = query('www.example.com');
    cache.set(q, response(q, { answers: [a('www.example.com', 300)], authorities: [{ name: 'example.com', type: 'NS', class: 'IN', ttl: 120, data: 'ns1.example.com' }] }));
    advance(elapsed);
    expect(ttls(get(cache, q))).toEqual(expected);
  });

  it("a negative answer's SOA says min(TTL, MINIMUM), counting down (RFC 2308 §3)", () => {
    const { cache, advance } = cacheWith();
    const q = query('nope.example.com');
    cache.set(q, response(q, { rcode: Rcode.NXDOMAIN, authorities: [soa('example.com', 3600, 60)] }));
    advance(20_000);
    const hit = get(cache, q);
    expect(hit?.rcode).toBe(Rcode.NXDOMAIN);
    expect(ttls(hit)).toEqual([40]);
  });

  it("a hit has the new query's ID and question spelling, RD, RA, and AA clear", () => {
    const { cache } = cacheWith();
    const first = query('WWW.Example.COM', 'A', { id: 7 });
    cache.set(first, response(first, { answers: [a('WWW.Example.COM', 300), a('other.example.com', 300, '192.0.2.9')] }));
    const second = createMessage({ id: 4242, flags: { rd: false }, questions: [{ name: 'www.example.com.', type: 'A', class: 'IN' }] });
    const hit = get(cache, second);
    expect(hit).toMatchObject({ id: 4242, response: true, rcode: Rcode.NOERROR, flags: { aa: false, rd: false, ra: true, tc: false } });
    expect(hit?.questions).toEqual([{ name: 'www.example.com.', type: 'A', class: 'IN' }]);
    // The owner of the asked name takes the asker's spelling; others are left alone.
    expect(hit?.answers.map((r) => r.name)).toEqual(['www.example.com.', 'other.example.com']);
  });

  it('keys are case-insensitive and ignore a trailing dot (RFC 4343)', () => {
    const { cache } = cacheWith();
    const q = query('Host.Example.ORG');
    cache.set(q, response(q, { answers: [a('Host.Example.ORG', 60)] }));
    for (const name of ['host.example.org', 'HOST.EXAMPLE.ORG.', 'hOsT.eXaMpLe.OrG']) {
      expect(get(cache, query(name))?.answers[0]).toMatchObject({ name, data: '192.0.2.1' });
    }
    expect(get(cache, query('host.example.org', 'AAAA'))).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('keeps DO and CD queries apart (RFC 3225, RFC 4035 §3.2.2)', () => {
    const { cache } = cacheWith();
    const plain = query('signed.example', 'A', { do: false });
    const withDo = query('signed.example', 'A', { do: true });
    const withCd = query('signed.example', 'A', { cd: true });
    cache.set(withDo, response(withDo, { answers: [a('signed.example', 60), { name: 'signed.example', type: 'RRSIG', class: 'IN', ttl: 60, data: rrsig() }] }));
    expect(get(cache, plain)).toBeUndefined();
    expect(get(cache, withCd)).toBeUndefined();
    expect(get(cache, withDo)?.answers).toHaveLength(2);
    // No EDNS at all is the same as DO clear.
    cache.set(plain, response(plain, { answers: [a('signed.example', 60)] }));
    expect(get(cache, query('signed.example'))?.answers).toHaveLength(1);
    // The reply's EDNS follows the new query: DO echoed (RFC 3225 §3), none without EDNS.
    expect(get(cache, withDo)?.edns).toMatchObject({ dnssecOk: true });
    expect(get(cache, query('signed.example'))?.edns).toBeUndefined();
  });

  it(`serves expired entries with TTL ${STALE_TTL} only through getStale, up to staleMax (RFC 8767)`, () => {
    const { cache, advance } = cacheWith({ staleMax: 60_000 });
    const q = query('stale.example');
    cache.set(q, response(q, { answers: [a('stale.example', 10)] }));
    // While fresh, getStale is get.
    advance(4_000);
    expect(ttls(getStale(cache, q))).toEqual([6]);
    advance(6_000);
    expect(get(cache, q)).toBeUndefined();
    const stale = getStale(cache, query('STALE.example', 'A', { id: 99 }));
    expect(stale).toMatchObject({ id: 99, rcode: Rcode.NOERROR, questions: [{ name: 'STALE.example' }] });
    expect(ttls(stale)).toEqual([STALE_TTL]);
    advance(59_999);
    expect(ttls(getStale(cache, q))).toEqual([STALE_TTL]);
    expect(cache.size).toBe(1);
    advance(1);
    expect(getStale(cache, q)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('serves a stale negative answer too, SOA TTL 30', () => {
    const { cache, advance } = cacheWith({ staleMax: 60_000 });
    const q = query('gone.example');
    cache.set(q, response(q, { rcode: Rcode.NXDOMAIN, authorities: [soa('example', 300, 5)] }));
    advance(5_000);
    expect(get(cache, q)).toBeUndefined();
    const stale = getStale(cache, q);
    expect(stale?.rcode).toBe(Rcode.NXDOMAIN);
    expect(ttls(stale)).toEqual([STALE_TTL]);
  });

  it('staleMax 0: nothing past expiry', () => {
    const { cache, advance } = cacheWith({ staleMax: 0 });
    const q = query('x.example');
    cache.set(q, response(q, { answers: [a('x.example', 1)] }));
    advance(1000);
    expect(getStale(cache, q)).toBeUndefined();
  });

  it('evicts the least recently used entry past maxEntries', () => {
    const { cache } = cacheWith({ maxEntries: 3 });
    const put = (name: string): void => {
      const q = query(name);
      cache.set(q, response(q, { answers: [a(name, 300)] }));
    };
    put('one.example');
    put('two.example');
    put('three.example');
    // Reading "one" makes "two" the least recently used.
    expect(get(cache, query('one.example'))).toBeDefined();
    put('four.example');
    expect(cache.size).toBe(3);
    expect(cache.evictions).toBe(1);
    expect(get(cache, query('two.example'))).toBeUndefined();
    for (const name of ['one.example', 'three.example', 'four.example']) expect(get(cache, query(name))).toBeDefined();
    // Replacing an entry does not grow the cache.
    put('four.example');
    expect(cache.size).toBe(3);
  });

  it('stays within maxBytes, and never keeps a response larger than it', () => {
    const { cache } = cacheWith({ maxBytes: 2000 });
    const txt = (name: string, size: number): void => {
      const q = query(name, 'TXT');
      cache.set(q, response(q, { answers: [{ name, type: 'TXT', class: 'IN', ttl: 300, data: 'x'.repeat(size) }] }));
    };
    for (let i = 0; i < 20; i++) {
      txt(`t${i}.example`, 200);
      expect(cache.bytes).toBeLessThanOrEqual(2000);
    }
    expect(cache.size).toBeGreaterThan(1);
    expect(cache.size).toBeLessThan(20);
    const before = cache.size;
    txt('huge.example', 2500);
    expect(get(cache, query('huge.example', 'TXT'))).toBeUndefined();
    expect(cache.size).toBe(before);
  });

  it('stays within maxEntries whatever is asked', () => {
    const { cache } = cacheWith({ maxEntries: 100 });
    for (let i = 0; i < 5000; i++) {
      const q = query(`r${i}.example`);
      cache.set(q, response(q, { answers: [a(`r${i}.example`, 300)] }));
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    expect(cache.evictions).toBe(4900);
  });

  it('a hit is a copy: changing it does not change the cache', () => {
    const { cache } = cacheWith();
    const q = query('copy.example');
    const res = response(q, { answers: [a('copy.example', 300)] });
    cache.set(q, res);
    res.answers[0] = a('copy.example', 300, '203.0.113.66');
    const hit = get(cache, q);
    expect(hit?.answers[0]).toMatchObject({ data: '192.0.2.1' });
    if (hit?.answers[0]) hit.answers[0].ttl = 1;
    expect(get(cache, q)?.answers[0]?.ttl).toBe(300);
  });

  it('ignores queries without exactly one question', () => {
    const { cache } = cacheWith();
    const none = createMessage({ id: 1 });
    expect(DnsCache.keyOf(none)).toBeUndefined();
    expect(cache.set(none, createReply(none))).toBe(false);
    expect(get(cache, none)).toBeUndefined();
  });

  it.each([{ maxEntries: 0 }, { maxEntries: 1.5 }, { maxBytes: -1 }, { staleMax: Number.NaN }])('rejects bad options %j', (options) => {
    expect(() => new DnsCache(options)).toThrow(InvalidArgumentError);
  });
});

function rrsig(): { typeCovered: string; algorithm: number; labels: number; originalTTL: number; expiration: number; inception: number; keyTag: number; signersName: string; signature: Buffer } {
  return {
    typeCovered: 'A',
    algorithm: 13,
    labels: 2,
    originalTTL: 60,
    expiration: 2_000_000_000,
    inception: 1_600_000_000,
    keyTag: 12345,
    signersName: 'signed.example',
    signature: Buffer.alloc(64, 1),
  };
}
