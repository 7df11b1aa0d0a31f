import { describe, expect, it } from 'vitest';
import { DnsQueryError } from '../../src/core/errors.js';
import { createMessage, createReply, type DnsMessage } from '../../src/dns/codec.js';
import { runChain, type DnsHandler, type DnsRequest } from '../../src/dns/handler.js';
import { createCacheHandler } from '../../src/stub/cache-handler.js';
import { DnsCache, STALE_TTL } from '../../src/stub/dns-cache.js';
import { createStubStats } from '../../src/stub/stub-stats.js';

function request(name: string, id = 1): DnsRequest {
  return { message: createMessage({ id, flags: { rd: true }, questions: [{ name, type: 'A', class: 'IN' }] }), client: { address: '127.0.0.1', port: 1, transport: 'udp' } };
}

/** An upstream's response as a forwarder returns it: its own ID, AA set, RA clear. */
function upstreamAnswer(query: DnsMessage, ttl = 60): DnsMessage {
  return createReply({ ...query, id: 999 }, { flags: { aa: true }, answers: [{ name: query.questions[0]?.name ?? '', type: 'A', class: 'IN', ttl, data: '192.0.2.1' }] });
}

describe('createCacheHandler', () => {
  it('makes every reply: from the forwarders\' response, from a fresh entry (aged, AA clear), from a stale one when they fail', async () => {
    let t = 1_000_000;
    const cache = new DnsCache({ now: () => t });
    const stats = createStubStats();
    const handler = createCacheHandler({ cache, match: (name) => name.endsWith('.example'), stats });
    let fail = false;
    const forwarder: DnsHandler = {
      name: 'upstream',
      handle: (req) => {
        if (fail) return Promise.reject(new DnsQueryError('ERR_DNS_SERVER_FAILURE', 'all upstreams failed'));
        const response = upstreamAnswer(req.message);
        handler.store(req.message, response);
        return Promise.resolve(response);
      },
    };
    const last = (): Promise<DnsMessage> => Promise.reject(new Error('fell through'));
    const chain = [handler, forwarder];

    const first = await runChain(chain, request('www.example', 7), last);
    expect(first).toMatchObject({ id: 7, flags: { aa: true, ra: true, rd: true } });
    expect(handler.origin(first)).toBeUndefined();

    t += 10_500;
    const second = await runChain(chain, request('WWW.example', 8), last);
    expect(second).toMatchObject({ id: 8, flags: { aa: false, ra: true }, answers: [{ name: 'WWW.example', ttl: 50 }] });
    expect(handler.origin(second)).toMatchObject({ elapsed: 10 });

    t += 60_000;
    fail = true;
    const stale = await runChain(chain, request('www.example', 9), last);
    expect(stale).toMatchObject({ id: 9, answers: [{ ttl: STALE_TTL }] });
    expect(handler.origin(stale)).toBeUndefined();
    await expect(runChain(chain, request('other.example'), last)).rejects.toMatchObject({ code: 'ERR_DNS_SERVER_FAILURE' });
    expect(stats).toMatchObject({ cacheHits: 1, cacheMisses: 3, staleServed: 1 });

    // A name it does not match goes past it untouched.
    await expect(runChain(chain, request('www.elsewhere'), last)).rejects.toMatchObject({ code: 'ERR_DNS_SERVER_FAILURE' });
    expect(stats.cacheMisses).toBe(3);
  });
});
