/**
 * TCP DNS cannot be made to hold unbounded memory or connections (RFC 7766
 * §6.2): queries in flight per connection, connections in total, write()
 * backpressure, and idle and per-message deadlines a trickling client cannot
 * stretch. The last test runs `srvlink dns` as a process against a client
 * that pipelines queries and never reads, and dig (a client we did not
 * write) still gets its answer.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { createMessage, createReply, decodeMessage, encodeMessage } from '../../src/dns/codec.js';
import type { DnsHandler } from '../../src/dns/handler.js';
import { DnsServer, type DnsServerOptions } from '../../src/dns/server.js';
import { frameMessage } from '../../src/dns/tcp-framing.js';
import { dig } from '../helpers/dig.js';
import { RawTcpClient } from '../helpers/raw-dns.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Answers every A question with one address, after `delay` ms; records how many it holds at once. */
function slowHandler(delay: number): DnsHandler & { busy: number; most: number } {
  const handler = {
    name: 'slow',
    busy: 0,
    most: 0,
    async handle(request: Parameters<DnsHandler['handle']>[0]) {
      handler.busy++;
      handler.most = Math.max(handler.most, handler.busy);
      await sleep(delay);
      handler.busy--;
      return createReply(request.message, { answers: [{ name: request.message.questions[0]?.name ?? '', type: 'A', ttl: 1, data: '192.0.2.1' }] });
    },
  };
  return handler;
}

async function startServer(options: Partial<DnsServerOptions> & Pick<DnsServerOptions, 'handlers'>): Promise<DnsServer> {
  const server = new DnsServer({ listen: { host: '127.0.0.1', port: 0 }, ...options });
  await server.start();
  cleanups.push(() => server.close());
  return server;
}

function query(id: number, name = 'a.test'): Buffer {
  return encodeMessage(createMessage({ id, flags: { rd: true }, questions: [{ name, type: 'A', class: 'IN' }] }));
}

async function open(server: HostPort): Promise<RawTcpClient> {
  const client = await RawTcpClient.open(server);
  cleanups.push(() => client.close());
  return client;
}

/** A socket that writes and never reads: its receive window fills, then the server's send buffer. */
async function neverReading(server: HostPort): Promise<Socket> {
  const socket = connect({ host: server.host, port: server.port });
  await once(socket, 'connect');
  socket.pause();
  socket.on('error', () => undefined);
  cleanups.push(() => socket.destroy());
  return socket;
}

/**
 * Write framed queries as fast as the server takes them, for `ms` or until it
 * stops reading for a second (its socket paused): the bytes written.
 */
async function pipeline(socket: Socket, frame: Buffer, ms: number): Promise<{ bytes: number; stalled: boolean }> {
  const burst = Buffer.concat(Array.from({ length: 256 }, () => frame));
  const end = Date.now() + ms;
  let bytes = 0;
  while (Date.now() < end && !socket.destroyed) {
    bytes += burst.length;
    if (!socket.write(burst)) {
      const drained = await Promise.race([once(socket, 'drain').then(() => true), sleep(1000).then(() => false)]);
      if (!drained) return { bytes, stalled: true };
    }
  }
  return { bytes, stalled: false };
}

function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

describe('DnsServer over TCP, bounded', () => {
  it('answers at most maxTcpPipeline queries of one connection at once, and all of them in the end', async () => {
    const handler = slowHandler(20);
    const server = await startServer({ handlers: [handler], maxTcpPipeline: 4 });
    const client = await open(server.address());
    client.write(Buffer.concat(Array.from({ length: 40 }, (_, i) => frameMessage(query(i + 1)))));
    const ids = new Set<number>();
    for (let i = 0; i < 40; i++) ids.add(decodeMessage(await client.receive()).id);
    expect(ids.size).toBe(40);
    expect(handler.most).toBe(4);
  });

  it('stops reading a connection whose replies are not read, and answers the others meanwhile', async () => {
    const handler = slowHandler(0);
    const server = await startServer({ handlers: [handler] });
    const socket = await neverReading(server.address());
    const frame = frameMessage(query(1));
    const { bytes, stalled } = await pipeline(socket, frame, 20_000);
    // The server stopped reading (a server that read on would buffer one reply per query, unbounded).
    expect(stalled).toBe(true);
    // What it read is what filled the kernel's buffers, far less than what was sent.
    expect(server.stats.queries).toBeLessThan(bytes / frame.length);
    const other = await open(server.address());
    other.send(query(99, 'other.test'));
    expect(decodeMessage(await other.receive()).id).toBe(99);
  });

  it('closes a connection whose message trickles in past the deadline from its first byte', async () => {
    const server = await startServer({ handlers: [slowHandler(0)], tcpMessageTimeout: 300, tcpIdleTimeout: 60_000 });
    const client = await open(server.address());
    const frame = frameMessage(query(5));
    let sent = 0;
    const started = Date.now();
    // One byte every 50 ms: each byte is "activity", none ends a message.
    while (!client.socket.destroyed && sent < frame.length) {
      client.write(frame.subarray(sent, sent + 1));
      sent++;
      const closed = await Promise.race([client.closed().then(() => true), sleep(50).then(() => false)]);
      if (closed) break;
    }
    await client.closed();
    expect(sent).toBeLessThan(frame.length);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(server.stats.tcpTimeouts).toBe(1);
    expect(server.stats.queries).toBe(0);
  });

  it('closes a connection that brings no whole query within the idle timeout', async () => {
    const server = await startServer({ handlers: [slowHandler(0)], tcpIdleTimeout: 300 });
    const client = await open(server.address());
    client.send(query(6));
    expect(decodeMessage(await client.receive()).id).toBe(6);
    await client.closed();
    expect(server.stats.tcpTimeouts).toBe(1);
  });

  it('past maxTcpConnections, a new connection takes the place of the longest idle one', async () => {
    const server = await startServer({ handlers: [slowHandler(0)], maxTcpConnections: 3 });
    const idle = [await open(server.address()), await open(server.address()), await open(server.address())];
    // The second one is active: it sent a whole query, so it is not the first to go.
    idle[1]?.send(query(2));
    await idle[1]?.receive();
    const fresh = await open(server.address());
    fresh.send(query(4));
    expect(decodeMessage(await fresh.receive()).id).toBe(4);
    await idle[0]?.closed();
    expect(server.stats.tcpEvicted).toBe(1);
    expect(idle[1]?.socket.destroyed).toBe(false);
    idle[1]?.send(query(3));
    expect(decodeMessage(await (idle[1] as RawTcpClient).receive()).id).toBe(3);
  });

  it('refuses a new connection when every connection has queries in flight', async () => {
    const server = await startServer({ handlers: [slowHandler(2_000)], maxTcpConnections: 2 });
    const busy = [await open(server.address()), await open(server.address())];
    for (const client of busy) client.send(query(1));
    await waitFor(() => server.stats.queries === 2, { what: 'both queries in flight' });
    const late = await open(server.address());
    await late.closed();
    expect(server.stats.tcpEvicted).toBe(1);
    for (const client of busy) expect(decodeMessage(await client.receive()).id).toBe(1);
  });

  it('srvlink dns keeps its memory bounded against a client that pipelines queries and never reads; dig still gets answers', async () => {
    // 40 instances: each SRV answer is ~2.5 KB, so every 30-byte query asks for 80 times its size.
    const file = join(tempDir(), 'records.yaml');
    writeFileSync(file, Array.from({ length: 40 }, (_, i) => `/skydns/local/skydns/env1/_tcp/_svc/i${i}: {host: 10.2.0.${i + 1}, port: ${30000 + i}}`).join('\n'));
    const proc = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', file]);
    const address = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'dns server listening')).address), 'address');
    const pid = proc.child.pid as number;
    const frame = frameMessage(encodeMessage(createMessage({ id: 1, questions: [{ name: '_svc._tcp.env1.skydns.local', type: 'SRV' }] })));
    // Warm up (code paths compiled, buffers allocated) before the baseline.
    for (let i = 0; i < 3; i++) await dig(address, '_svc._tcp.env1.skydns.local', 'SRV', ['+tcp']);
    const before = rss(pid);
    const clients = await Promise.all(Array.from({ length: 8 }, () => neverReading(address)));
    const results = await Promise.all(clients.map((socket) => pipeline(socket, frame, 15_000)));
    const after = rss(pid);
    const sent = results.reduce((sum, r) => sum + r.bytes, 0);
    console.log(
      `never-reading clients: 8 connections, ${(sent / 1024).toFixed(0)} KiB of queries written before the server stopped reading, ` +
        `server RSS ${(before / 2 ** 20).toFixed(1)} MiB → ${(after / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(results.every((r) => r.stalled)).toBe(true);
    // Generous: what it holds is the kernel's and its own socket buffers, not one reply per query sent.
    expect(after - before).toBeLessThan(64 * 2 ** 20);
    const answer = await dig(address, '_svc._tcp.env1.skydns.local', 'SRV', ['+tcp']);
    expect(answer.answer).toHaveLength(40);
    const udp = await dig(address, 'i0._svc._tcp.env1.skydns.local', 'A');
    expect(udp.answer.map((r) => r.data)).toEqual(['10.2.0.1']);
    expect(proc.child.exitCode).toBeNull();
  });
});
