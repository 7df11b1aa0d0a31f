import { describe, expect, it } from 'vitest';
import { createMessage, createReply, type DnsMessage } from '../../src/dns/codec.js';
import { runChain, type DnsRequest } from '../../src/dns/handler.js';
import { createForwardHandler } from '../../src/stub/forward-handler.js';
import { createStubStats } from '../../src/stub/stub-stats.js';

function request(name: string): DnsRequest {
  return { message: createMessage({ id: 1, flags: { rd: true }, questions: [{ name, type: 'A', class: 'IN' }] }), client: { address: '127.0.0.1', port: 1, transport: 'udp' } };
}

describe('createForwardHandler', () => {
  it('sheds questions past maxInflight at once instead of queueing them behind a slow upstream', async () => {
    // An upstream that answers only when told: exchanges stay in flight meanwhile.
    const held: (() => void)[] = [];
    const resolver = {
      exchange: (query: DnsMessage): Promise<DnsMessage> => new Promise((resolve) => held.push(() => resolve(createReply(query, { answers: [] })))),
    };
    const stats = createStubStats();
    const handler = createForwardHandler({ name: 'upstream', match: 'all', resolver, stats, maxInflight: 2 });
    const last = (): Promise<DnsMessage> => Promise.reject(new Error('fell through'));
    const first = runChain([handler], request('a.example'), last);
    const second = runChain([handler], request('b.example'), last);
    // The same name again joins the exchange in flight: no new slot needed.
    const again = runChain([handler], request('a.example'), last);
    await expect(runChain([handler], request('c.example'), last)).rejects.toMatchObject({ code: 'ERR_DNS_OVERLOAD' });
    expect(stats).toMatchObject({ shed: 1, coalesced: 1 });
    for (const release of held) release();
    await Promise.all([first, second, again]);
    // Slots free again once answered.
    const fourth = runChain([handler], request('d.example'), last);
    held.at(-1)?.();
    await expect(fourth).resolves.toMatchObject({ rcode: 0 });
  });
});
