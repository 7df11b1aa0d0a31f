/**
 * RFC 8767's client-response timer and the per-question deadline, in the
 * stub of a real `srvlink run`: upstreams are a UDP socket that never
 * answers (a silent server) and dnsmasq; the client is dig. An app's
 * resolver (glibc) gives up after 5 s per try: the stub must answer first.
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';

/** A UDP socket on loopback that reads every query and answers none. */
async function silentServer(): Promise<{ address: HostPort; received: () => number }> {
  const socket: Socket = createSocket('udp4');
  let received = 0;
  socket.on('message', () => (received += 1));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  onTestFinished(() => void socket.close());
  return { address: { host: '127.0.0.1', port: socket.address().port }, received: () => received };
}

async function startRun(upstreams: HostPort[], cluster: HostPort, timeout: string): Promise<HostPort> {
  const run = spawnSrvlink([
    'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=zookeeper', '--backend', 'zookeeper=127.0.0.1:1',
    '--dns-listen', '127.0.0.1:0', '--cluster-dns', `${cluster.host}:${cluster.port}`, '--dns-timeout', timeout,
    ...upstreams.flatMap((u) => ['--upstream', `${u.host}:${u.port}`]),
  ]);
  return parseHostPort(String((await run.waitForLog((l) => l.msg === 'dns stub listening')).address), 'address');
}

/** dig with one try and a timeout longer than any the stub could take: what we measure is the stub. */
const ONE_TRY = ['+tries=1', '+time=10'];

describe('the stub answers before the app gives up', () => {
  it('answers from stale after ~1.8 s while the refresh goes on, and the refresh fills the cache (RFC 8767 §5)', async () => {
    const silent = await silentServer();
    const dnsmasq = await startDnsmasq({ localZones: ['example.test'], hosts: [{ name: 'www.example.test', address: '192.0.2.1' }], ttl: 1 });
    // Every exchange asks the silent server first (3 s), then dnsmasq.
    const stub = await startRun([silent.address, dnsmasq.address], dnsmasq.address, '3s');
    const first = await dig(stub, 'www.example.test', 'A', ONE_TRY);
    expect(first.answer.map((r) => `${r.data} ${r.ttl}`)).toEqual(['192.0.2.1 1']);

    // The answer expires (TTL 1) and dnsmasq now knows another address.
    await dnsmasq.stop();
    const moved = await startDnsmasq({ listen: dnsmasq.address, localZones: ['example.test'], hosts: [{ name: 'www.example.test', address: '192.0.2.2' }], ttl: 1 });
    await sleep(1100);
    const started = performance.now();
    const stale = await dig(stub, 'www.example.test', 'A', ONE_TRY);
    const elapsed = performance.now() - started;
    console.log(`stale answer after ${elapsed.toFixed(0)} ms (refresh needs 3 s: the silent server's timeout, then dnsmasq)`);
    // The old address with the stale TTL (RFC 8767 §4: 30 s): the refresh, 3 s away, had not answered.
    expect(stale.status).toBe('NOERROR');
    expect(stale.answer.map((r) => `${r.data} ${r.ttl}`)).toEqual(['192.0.2.1 30']);
    expect(elapsed).toBeLessThan(3000);

    // The refresh went on in the background and put dnsmasq's new answer in the cache.
    await sleep(2500);
    const refreshed = await dig(stub, 'www.example.test', 'A', ONE_TRY);
    expect(refreshed.answer.map((r) => r.data)).toEqual(['192.0.2.2']);
    expect(silent.received()).toBeGreaterThanOrEqual(2);
    await moved.stop();
  });

  it('answers SERVFAIL within the question deadline although three silent servers take 2 s each', async () => {
    const silent = [await silentServer(), await silentServer(), await silentServer()];
    const dnsmasq = await startDnsmasq({});
    const stub = await startRun(silent.map((s) => s.address), dnsmasq.address, '2s');
    const started = performance.now();
    const result = await dig(stub, 'never.example.test', 'A', ONE_TRY);
    const elapsed = performance.now() - started;
    console.log(`SERVFAIL after ${elapsed.toFixed(0)} ms (three servers × 2 s would be 6 s; glibc gives up at 5 s)`);
    expect(result.status).toBe('SERVFAIL');
    expect(elapsed).toBeLessThan(5000);
    // The stub did ask them (the deadline cut the wait, not the questions).
    expect(silent[0]?.received()).toBe(1);
  });
});
