import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectTcp, readLine, startNamedBackend, unusedPort } from '../helpers/tcp-backends.js';
import { linesMatching, startForwarder } from '../helpers/start-forwarder.js';
import { TestSource, backend } from '../helpers/test-source.js';
import { seededRandom, sequence } from '../helpers/seeded-random.js';

/** Which named backend a new connection through `address` reaches. */
async function reached(address: { host: string; port: number }): Promise<string> {
  const socket = await connectTcp(address);
  const name = await readLine(socket);
  socket.destroy();
  return name;
}

/** A dial seam that records every `host:port` it dials, and dials for real. */
function recordingDial(): { dial: (host: string, port: number) => Socket; dialed: string[] } {
  const dialed: string[] = [];
  return {
    dialed,
    dial: (host, port) => {
      dialed.push(`${host}:${port}`);
      return connect({ host, port, allowHalfOpen: true });
    },
  };
}

describe('Forwarder: the order of each connection', () => {
  it('draws a new RFC 2782 order per connection from the injected random source', async () => {
    const a = await startNamedBackend('a');
    const b = await startNamedBackend('b');
    const source = new TestSource([backend('127.0.0.1', a.address.port), backend('127.0.0.1', b.address.port)]);
    // Weights 1:1: a draw in the lower half picks the first, the upper half the second; one draw per connection.
    const { address } = await startForwarder({ source, random: sequence(0, 0.99, 0.99, 0, 0.5) });
    const got = [];
    for (let i = 0; i < 5; i++) got.push(await reached(address));
    expect(got).toEqual(['a', 'b', 'b', 'a', 'b']);
  });

  it('follows weights 3:1 across 400 connections (a seeded source)', async () => {
    const heavy = await startNamedBackend('heavy');
    const light = await startNamedBackend('light');
    const source = new TestSource([backend('127.0.0.1', heavy.address.port, { weight: 3 }), backend('127.0.0.1', light.address.port, { weight: 1 })]);
    const { address } = await startForwarder({ source, random: seededRandom(2782) });
    let heavyCount = 0;
    for (let i = 0; i < 400; i++) if ((await reached(address)) === 'heavy') heavyCount++;
    // Binomial(400, 0.75): mean 300, sd ~8.7.
    expect(heavyCount).toBeGreaterThan(260);
    expect(heavyCount).toBeLessThan(340);
  });

  it('dials the order of the new set from the next connection after the set changed', async () => {
    const a = await startNamedBackend('a');
    const b = await startNamedBackend('b');
    const source = new TestSource([backend('127.0.0.1', a.address.port)]);
    const { address } = await startForwarder({ source });
    expect(await reached(address)).toBe('a');
    expect(await reached(address)).toBe('a');
    source.set([backend('127.0.0.1', b.address.port)]);
    expect(await reached(address)).toBe('b');
    source.set([backend('127.0.0.1', b.address.port, { priority: 20 }), backend('127.0.0.1', a.address.port, { priority: 10 })]);
    expect(await reached(address)).toBe('a');
  });

  it('dials an address that two backends list once per connection, in the place of its first listing', async () => {
    const live = await startNamedBackend('live');
    const dead = await unusedPort();
    // Both priority-10 backends list the dead address; the second also lists a live one.
    const source = new TestSource([
      backend('127.0.0.1', dead, { priority: 10, weight: 1 }),
      backend(['127.0.0.1', '127.0.0.2'], dead, { priority: 10, weight: 1 }),
      backend('127.0.0.1', live.address.port, { priority: 20 }),
    ]);
    const { dial, dialed } = recordingDial();
    const { forwarder, address } = await startForwarder({ source, dial, ejectAfter: 1000, random: sequence(0, 0, 0, 0.99, 0, 0) });
    expect(await reached(address)).toBe('live');
    // First order: backend 1, then backend 2 (its first address already dialed), then priority 20.
    expect(dialed).toEqual([`127.0.0.1:${dead}`, `127.0.0.2:${dead}`, `127.0.0.1:${live.address.port}`]);
    dialed.length = 0;
    expect(await reached(address)).toBe('live');
    // Second order: backend 2 first (127.0.0.1 then 127.0.0.2), backend 1 adds nothing new.
    expect(dialed).toEqual([`127.0.0.1:${dead}`, `127.0.0.2:${dead}`, `127.0.0.1:${live.address.port}`]);
    expect(forwarder.stats.connectFailures).toBe(4);
  });

  it('counts an address listed twice once in what it says was tried and not tried', async () => {
    const dead = await unusedPort();
    const source = new TestSource([backend('127.0.0.1', dead), backend('127.0.0.1', dead)]);
    const { logs, address } = await startForwarder({ source, ejectAfter: 1000 }, 'info');
    const socket = await connectTcp(address);
    await new Promise((resolve) => socket.once('close', resolve));
    const [line] = linesMatching(logs, 'warn', /^cannot reach any backend/);
    expect(line?.msg).toBe(`cannot reach any backend of "_svc._tcp.env1.skydns.local." (tried 127.0.0.1:${dead}: ECONNREFUSED)`);
  });
});
