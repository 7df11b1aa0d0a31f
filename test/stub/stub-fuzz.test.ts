/**
 * Bad packets cannot hurt the stub: 100,000 random and mutated packets over
 * UDP and TCP at a running `srvlink run`, which keeps answering a correct
 * query during and after, with its memory bounded.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { Rcode, createMessage, createReply, decodeMessage, encodeMessage } from '../../src/dns/codec.js';
import { DnsServer } from '../../src/dns/server.js';
import { frameMessage } from '../../src/dns/tcp-framing.js';
import { RawTcpClient, RawUdpClient } from '../helpers/raw-dns.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';

const UDP_PACKETS = 70_000;
const TCP_PACKETS = 30_000;
/** Packets between two checks of a correct query. */
const BURST = 500;
/** The stub's V8 heap cap for this test, in MiB. */
const HEAP_MB = 64;

/** Resident memory of a process, from /proc, in bytes. */
function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** Random bytes, valid queries with a few bytes changed, and queries for random names (which fill the cache). */
function packets(count: number, seed: number): Buffer[] {
  const valid = encodeMessage(
    createMessage({ id: 1, flags: { rd: true }, questions: [{ name: 'some.name.example', type: 'A' }], edns: { udpPayloadSize: 1232, version: 0, dnssecOk: false } }),
  );
  const arbitrary = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 700 }).map((bytes) => Buffer.from(bytes)),
    fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((edits) => {
      const copy = Buffer.from(valid);
      for (const [at, value] of edits) copy[at] = value;
      return copy;
    }),
    fc.stringMatching(/^[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,3}$/).map((name) => encodeMessage(createMessage({ id: 7, questions: [{ name, type: 'A' }] }))),
  );
  return fc.sample(arbitrary, { numRuns: count, seed });
}

/**
 * Ask for the alias until answered: right after a burst the stub's socket
 * buffer may be full and the kernel drops the datagram, so a lost query is
 * asked again soon; 100 tries give the stub 10 s or more to come back.
 */
async function expectAliasAnswered(client: RawUdpClient, stub: HostPort, id: number): Promise<void> {
  const query = encodeMessage(createMessage({ id, flags: { rd: true }, questions: [{ name: 'zookeeper', type: 'A' }] }));
  for (let attempt = 0; ; attempt++) {
    try {
      await client.send(stub, query);
      for (;;) {
        const reply = decodeMessage(await client.receive(100));
        if (reply.id !== id) continue;
        expect(reply.rcode).toBe(Rcode.NOERROR);
        expect(reply.answers.map((rr) => rr.data)).toEqual(['127.0.0.1']);
        return;
      }
    } catch (err) {
      if (attempt >= 100) throw err;
    }
  }
}

describe('the stub under random and malformed packets', () => {
  it('keeps answering correct queries over 100,000 bad ones, with bounded memory', async () => {
    // An upstream of our own answering every name NXDOMAIN: random names reach it and are cached.
    const upstream = new DnsServer({
      listen: { host: '127.0.0.1', port: 0 },
      handlers: [{ name: 'nx', handle: async ({ message }) => createReply(message, { rcode: Rcode.NXDOMAIN }) }],
    });
    await upstream.start();
    onTestFinished(() => upstream.close());
    const srvlink = spawnSrvlink([
      'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=zookeeper', '--backend', 'zookeeper=127.0.0.1:1',
      '--dns-listen', '127.0.0.1:0', '--dns-cache-size', '2000',
      // Every name goes to our own server: nothing leaves loopback.
      '--upstream', `127.0.0.1:${upstream.address().port}`, '--cluster-dns', `127.0.0.1:${upstream.address().port}`,
    ], {
      // A small heap: memory that grew without bound would end the process (out of memory), not just make V8 lazy.
      env: { NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}` },
    });
    const stub = parseHostPort(String((await srvlink.waitForLog((l) => l.msg === 'dns stub listening')).address), 'address');
    const pid = srvlink.child.pid as number;
    const checker = await RawUdpClient.open();
    onTestFinished(() => checker.close());
    const flood = createSocket('udp4');
    flood.bind(0, '127.0.0.1');
    await once(flood, 'listening');
    onTestFinished(() => void flood.close());
    flood.on('message', () => undefined);

    const udp = packets(UDP_PACKETS, 4242);
    const tcp = packets(TCP_PACKETS, 2424);
    let checks = 0;
    // Warm up with the first bursts before taking the memory baseline.
    let baseline = 0;
    for (let from = 0; from < udp.length; from += BURST) {
      for (const packet of udp.slice(from, from + BURST)) flood.send(packet, stub.port, stub.host);
      await expectAliasAnswered(checker, stub, ++checks);
      if (from === 10 * BURST) baseline = rss(pid);
    }
    for (let from = 0; from < tcp.length; from += BURST) {
      const connection = await RawTcpClient.open(stub);
      // Framed garbage: each frame is read as a message and answered (FORMERR) or dropped.
      connection.write(Buffer.concat(tcp.slice(from, from + BURST).map(frameMessage)));
      // Streams that break the framing, on other connections: a zero length, and a frame cut short
      // by the client's FIN. Each is closed; nothing else is hurt.
      const zero = await RawTcpClient.open(stub);
      zero.write(Buffer.concat([Buffer.from([0, 0]), tcp[from] ?? Buffer.alloc(1)]));
      const cut = await RawTcpClient.open(stub);
      cut.write(Buffer.concat([Buffer.from([0xff, 0xff]), tcp[from] ?? Buffer.alloc(1)]));
      cut.socket.end();
      await Promise.all([zero.closed(), cut.closed()]);
      connection.close();
      await expectAliasAnswered(checker, stub, ++checks);
    }
    const grown = rss(pid) - baseline;
    expect(srvlink.child.exitCode).toBeNull();
    // Bounded: it lived through the flood within its heap cap, and what it holds beyond the
    // warm-up is no more than the heap cap itself (the cache holds at most 2,000 answers).
    expect(grown).toBeLessThan(HEAP_MB * 1024 * 1024);
    expect(srvlink.logs.filter((l) => l.level === 'error')).toEqual([]);
    // Nothing but structured lines on stderr: a Node warning (e.g. too many listeners) is a bug.
    expect(srvlink.logs.filter((l) => l.level === 'raw')).toEqual([]);
  }, 300_000);
});
