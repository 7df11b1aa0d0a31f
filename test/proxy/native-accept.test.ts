import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SrvlinkError } from '../../src/core/errors.js';
import { loadNativeAddon } from '../../src/core/native-addon.js';
import type { ConnectionRecord } from '../../src/proxy/forwarder.js';
import { NativeDataPlane } from '../../src/proxy/native-data-plane.js';
import { DATA_PLANES } from '../helpers/data-planes.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { startForwarder } from '../helpers/start-forwarder.js';
import { connectTcp, echoRoundTrip, expectReset, unusedPort } from '../helpers/tcp-backends.js';
import { TestSource, backend } from '../helpers/test-source.js';
import { waitFor } from '../helpers/wait-for.js';

const native = DATA_PLANES.find((p) => p.name === 'native' && p.accept === 'native');
const plane = native?.plane instanceof NativeDataPlane ? native.plane : undefined;
const skip = native?.skip ?? (plane?.acceptor === undefined ? 'skipped: the native addon has no accepts (built before them: npm run build:native)' : undefined);

const addon = loadNativeAddon().addon;

/** Descriptors of this process, but for the plane's pipes (kept pooled after a burst: two each). */
function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length - 2 * (addon?.spliceStats?.().pipesOpen ?? 0);
}

describe.skipIf(skip !== undefined)('native accept (the native data plane accepts clients in C)', () => {
  it('is what a forwarder on the native plane uses, unless told js or given a host name to listen on', async () => {
    const source = new TestSource([backend('127.0.0.1', 1)]);
    expect((await startForwarder({ source, dataPlane: plane })).forwarder.acceptsNatively).toBe(true);
    expect((await startForwarder({ source, dataPlane: plane, accept: 'js' })).forwarder.acceptsNatively).toBe(false);
    expect((await startForwarder({ source, dataPlane: plane, listen: { host: 'localhost', port: 0 } })).forwarder.acceptsNatively).toBe(false);
  });

  it('refuses a port in use with the same ERR_LISTEN as the JavaScript accept', async () => {
    const source = new TestSource([backend('127.0.0.1', 1)]);
    const { address } = await startForwarder({ source, dataPlane: plane });
    const second = startForwarder({ source, dataPlane: plane, listen: address });
    await expect(second).rejects.toThrow(SrvlinkError);
    await expect(second).rejects.toThrow(/already in use/);
  });

  it('tells the access log each client as the client sees itself, forwarded through socat or reset for want of a backend', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=64', 'PIPE');
    const records: ConnectionRecord[] = [];
    const { forwarder, address } = await startForwarder({
      source: new TestSource([backend('127.0.0.1', echo.port)]),
      dataPlane: plane,
      observer: { closed: (record) => records.push(record) },
    });
    const socket = await connectTcp(address);
    const local = `${socket.localAddress ?? ''}:${socket.localPort ?? ''}`;
    await echoRoundTrip(socket);
    socket.end();
    await waitFor(() => records.length === 1, { what: 'the forwarded connection to be logged' });
    expect(records[0]).toMatchObject({ client: local, backend: `127.0.0.1:${echo.port}`, outcome: 'closed', bytesIn: 4, bytesOut: 4 });

    const dead = await unusedPort();
    const down = await startForwarder({ source: new TestSource([backend('127.0.0.1', dead)]), dataPlane: plane, observer: { closed: (record) => records.push(record) } });
    await expectReset(down.address);
    await waitFor(() => records.length === 2, { what: 'the refused connection to be logged' });
    expect(records[1]).toMatchObject({ backend: undefined, tried: [`127.0.0.1:${dead}`], outcome: 'unreachable' });
    expect(forwarder.activeConnections).toBe(0);
  });

  it('gives back every descriptor after churn of forwarded, reset and refused clients', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=64', 'PIPE');
    const dead = await unusedPort();
    const good = await startForwarder({ source: new TestSource([backend('127.0.0.1', echo.port)]), dataPlane: plane, maxConnections: 4 });
    const bad = await startForwarder({ source: new TestSource([backend('127.0.0.1', dead)]), dataPlane: plane });
    // Warm up (the plane's first pipes, socat's first children), then measure.
    const warm = await connectTcp(good.address);
    await echoRoundTrip(warm);
    warm.end();
    await waitFor(() => good.forwarder.activeConnections === 0, { what: 'the warm-up connection to close' });
    const baseline = openDescriptors();
    for (let round = 0; round < 20; round++) {
      const clean = await Promise.all(Array.from({ length: 4 }, () => connectTcp(good.address)));
      // Over maxConnections: closed at once.
      const surplus = await connectTcp(good.address).catch(() => undefined);
      for (const socket of clean) await echoRoundTrip(socket);
      clean.forEach((socket, i) => (i % 2 === 0 ? socket.end() : socket.resetAndDestroy()));
      surplus?.destroy();
      await expectReset(bad.address);
      await waitFor(() => good.forwarder.activeConnections === 0 && bad.forwarder.activeConnections === 0, { what: 'every connection of the round to close' });
    }
    expect(good.forwarder.stats.forwarded).toBe(81);
    expect(good.forwarder.stats.rejected).toBeGreaterThan(0);
    expect(bad.forwarder.stats.failed).toBe(20);
    await waitFor(() => openDescriptors() <= baseline, { what: `descriptors back to ${baseline} (now ${openDescriptors()})` });
  });
});
