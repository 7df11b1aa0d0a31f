import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Rcode, createMessage, createReply, decodeHeader, decodeMessage, encodeMessage, type DnsMessage } from '../../src/dns/codec.js';
import type { DnsHandler } from '../../src/dns/handler.js';
import { DnsServer } from '../../src/dns/server.js';
import { RawTcpClient, RawUdpClient } from '../helpers/raw-dns.js';

const helloHandler: DnsHandler = {
  name: 'hello',
  handle: async (request, next) => {
    const question = request.message.questions[0];
    if (question?.name.toLowerCase() === 'boom.test') throw new Error('handler exploded');
    if (question?.name.toLowerCase() === 'big.test') {
      // 40 TXT records of 100 bytes: ~4.5 kB, over any UDP limit we allow.
      const answers = Array.from({ length: 40 }, (_, i) => ({ name: question.name, type: 'TXT' as const, ttl: 60, data: `${i}`.padEnd(100, 'x') }));
      return createReply(request.message, { answers });
    }
    if (question?.name.toLowerCase() !== 'hello.test') return next();
    return createReply(request.message, {
      flags: { aa: true },
      answers: [{ name: question.name, type: 'A', ttl: 60, data: '192.0.2.1' }],
    });
  },
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(): Promise<DnsServer> {
  const server = new DnsServer({ listen: { host: '127.0.0.1', port: 0 }, handlers: [helloHandler] });
  await server.start();
  cleanups.push(() => server.close());
  return server;
}

async function udpClient(): Promise<RawUdpClient> {
  const client = await RawUdpClient.open();
  cleanups.push(() => client.close());
  return client;
}

async function tcpClient(server: DnsServer): Promise<RawTcpClient> {
  const client = await RawTcpClient.open(server.address());
  cleanups.push(() => client.close());
  return client;
}

function query(id: number, name: string, type: 'A' | 'TXT' = 'A', extra: Partial<DnsMessage> = {}): Buffer {
  return encodeMessage(createMessage({ id, flags: { rd: true }, questions: [{ name, type, class: 'IN' }], ...extra }));
}

describe('DnsServer', () => {
  it('answers over UDP and TCP on the same port', async () => {
    const server = await startServer();
    const udp = await udpClient();
    const reply = decodeMessage(await udp.exchange(server.address(), query(1, 'hello.test')));
    expect(reply).toMatchObject({ id: 1, response: true, rcode: Rcode.NOERROR, flags: { aa: true, rd: true } });
    expect(reply.answers[0]).toMatchObject({ type: 'A', data: '192.0.2.1' });

    const tcp = await tcpClient(server);
    tcp.send(query(2, 'HELLO.test'));
    const tcpReply = decodeMessage(await tcp.receive());
    expect(tcpReply).toMatchObject({ id: 2, questions: [{ name: 'HELLO.test' }] });
    expect(tcpReply.answers[0]).toMatchObject({ name: 'HELLO.test', data: '192.0.2.1' });
  });

  it('answers several pipelined TCP queries sent in one write, and split ones', async () => {
    const server = await startServer();
    const tcp = await tcpClient(server);
    const framed = Buffer.concat([10, 11, 12].map((id) => {
      const q = query(id, 'hello.test');
      const out = Buffer.alloc(q.length + 2);
      out.writeUInt16BE(q.length);
      q.copy(out, 2);
      return out;
    }));
    tcp.write(framed.subarray(0, 7));
    tcp.write(framed.subarray(7));
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(decodeMessage(await tcp.receive()).id);
    expect(ids.sort()).toEqual([10, 11, 12]);
  });

  it('refuses what no handler takes', async () => {
    const server = await startServer();
    const udp = await udpClient();
    expect(decodeMessage(await udp.exchange(server.address(), query(3, 'other.test'))).rcode).toBe(Rcode.REFUSED);
  });

  it('turns a handler error into SERVFAIL and counts it', async () => {
    const server = await startServer();
    const udp = await udpClient();
    const reply = decodeMessage(await udp.exchange(server.address(), query(4, 'boom.test')));
    expect(reply).toMatchObject({ id: 4, rcode: Rcode.SERVFAIL, questions: [{ name: 'boom.test' }] });
    expect(server.stats.servfail).toBe(1);
  });

  it('answers FORMERR when only the header is readable', async () => {
    const server = await startServer();
    const udp = await udpClient();
    const garbage = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([63, 1, 2])]);
    const reply = decodeMessage(await udp.exchange(server.address(), garbage));
    expect(reply).toMatchObject({ id: 0x1234, response: true, rcode: Rcode.FORMERR, flags: { rd: true } });
    expect(server.stats.formerr).toBe(1);
  });

  it('answers FORMERR to a question no reply could repeat (a dot inside a label), and keeps serving', async () => {
    const server = await startServer();
    const udp = await udpClient();
    const dotted = Buffer.from('1234010000010000000000000361622e0263640000010001', 'hex');
    const reply = decodeMessage(await udp.exchange(server.address(), dotted));
    expect(reply).toMatchObject({ id: 0x1234, rcode: Rcode.FORMERR, questions: [] });
    expect(decodeMessage(await udp.exchange(server.address(), query(8, 'hello.test'))).answers).toHaveLength(1);
  });

  it('drops packets shorter than a header, and responses, without answering', async () => {
    const server = await startServer();
    const udp = await udpClient();
    await udp.send(server.address(), Buffer.from([1, 2, 3]));
    await udp.send(server.address(), encodeMessage(createMessage({ id: 9, response: true, questions: [{ name: 'hello.test', type: 'A' }] })));
    // Datagrams on loopback arrive in order: the first reply must be the one to this query.
    expect(decodeMessage(await udp.exchange(server.address(), query(5, 'hello.test'))).id).toBe(5);
    expect(server.stats.dropped).toBe(2);
  });

  it('truncates an oversized UDP answer and gives the whole of it over TCP', async () => {
    const server = await startServer();
    const udp = await udpClient();
    const cut = decodeMessage(await udp.exchange(server.address(), query(6, 'big.test', 'TXT')));
    expect(cut.flags.tc).toBe(true);
    // Whole records, as many as fit in 512 bytes (no EDNS): four TXT records of ~113 bytes.
    expect(cut.answers.length).toBeGreaterThan(0);
    expect(cut.answers.length).toBeLessThan(40);
    expect(server.stats.truncated).toBe(1);
    const tcp = await tcpClient(server);
    tcp.send(query(6, 'big.test', 'TXT'));
    const full = decodeMessage(await tcp.receive());
    expect(full.flags.tc).toBe(false);
    expect(full.answers).toHaveLength(40);
  });

  it('closes a TCP connection whose frame length is impossible', async () => {
    const server = await startServer();
    const tcp = await tcpClient(server);
    tcp.write(Buffer.from([0, 0]));
    await tcp.closed();
    expect(server.stats.badFrames).toBe(1);
  });

  it('survives random and mutated packets, every reply well formed (property)', async () => {
    const server = await startServer();
    const udp = await udpClient();
    const valid = query(0x4242, 'hello.test');
    let sentinel = 0;
    const bytes = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 600 }),
      // Mutations of a valid query: a few bytes overwritten.
      fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((edits) => {
        const copy = Buffer.from(valid);
        for (const [at, value] of edits) copy[at] = value;
        return copy;
      }),
    );
    await fc.assert(
      fc.asyncProperty(bytes, async (packet) => {
        await udp.send(server.address(), packet);
        // Follow each packet with a known query; every reply before its answer
        // belongs to the random packet and must be a well-formed response to it.
        sentinel = (sentinel + 1) % 0x10000;
        await udp.send(server.address(), query(sentinel, 'hello.test'));
        for (;;) {
          const reply = await udp.receive();
          const decoded = decodeMessage(reply);
          expect(decoded.response).toBe(true);
          if (decoded.id === sentinel && decoded.rcode === Rcode.NOERROR && decoded.answers.length === 1) break;
          expect(decoded.id).toBe(decodeHeader(packet)?.id);
        }
      }),
      { numRuns: 1500 },
    );
    // The same over TCP, framed: garbage inside a valid frame never closes the connection.
    const tcp = await tcpClient(server);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (packet) => {
        tcp.send(packet);
        tcp.send(query(7, 'hello.test'));
        for (;;) {
          const decoded = decodeMessage(await tcp.receive());
          if (decoded.id === 7 && decoded.answers.length === 1) break;
          expect(decoded.id).toBe(decodeHeader(packet)?.id);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('closes twice without complaint and frees its port', async () => {
    const server = await startServer();
    const { port } = server.address();
    await server.close();
    await server.close();
    const again = new DnsServer({ listen: { host: '127.0.0.1', port }, handlers: [] });
    await again.start();
    await again.close();
  });
});
