/**
 * The native data plane's pipes: a direction holds one only while its bytes
 * are in flight, so an idle pair holds just its two sockets, and a burst on
 * more pairs than the plane has pipes for is copied (recv/send) instead,
 * every byte intact. The plane is started here with few pipes and two
 * threads; socat is the peer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { loadNativeAddon, type NativeAddon } from '../../src/core/native-addon.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { connectTcp, echoRoundTrip, readAll } from '../helpers/tcp-backends.js';
import { WAIT_TIMEOUT, waitFor } from '../helpers/wait-for.js';

const loaded = loadNativeAddon();
const addon = loaded.addon?.spliceStart ? (loaded.addon as Required<NativeAddon>) : undefined;
const MAX_PIPES = 8;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

interface PairEnd {
  bytesIn: number;
  bytesOut: number;
  end: number;
  errno: number;
}

const ends = new Map<number, PairEnd>();
addon?.spliceStart((id, bytesIn, bytesOut, end, errno) => void ends.set(id, { bytesIn, bytesOut, end, errno }), { threads: 2, maxPipes: MAX_PIPES });

const fdOf = (socket: Socket): number => (socket as unknown as { _handle: { fd: number } })._handle.fd;

/** This process's open descriptors by kind ("socket", "pipe", ...), from /proc/self/fd. */
function fdKinds(): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the descriptor readdir itself used, closed since
    }
    const kind = /^(\w+):/.exec(target)?.[1] ?? 'file';
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return kinds;
}

/** A listener that dials `backend` for each client and hands both sockets to the plane. */
async function startSplicer(backend: HostPort): Promise<{ address: HostPort; ids: number[] }> {
  const ids: number[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    client.on('error', () => undefined);
    const upstream = connect({ host: backend.host, port: backend.port, allowHalfOpen: true });
    upstream.pause();
    upstream.on('error', () => client.destroy());
    upstream.once('connect', () => {
      ids.push((addon as Required<NativeAddon>).spliceAdd(fdOf(client), fdOf(upstream), 0));
      client.destroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { address: { host: '127.0.0.1', port: (server.address() as { port: number }).port }, ids };
}

/** `count` pairs through the splicer, each after one echoed byte (so the plane has pumped it): the client sockets. */
async function idlePairs(splicer: { address: HostPort; ids: number[] }, count: number): Promise<Socket[]> {
  const sockets = await Promise.all(
    Array.from({ length: count }, async () => {
      const socket = await connectTcp(splicer.address);
      await echoRoundTrip(socket, 'x');
      return socket;
    }),
  );
  await waitFor(() => splicer.ids.length === count, { what: `${count} pairs handed over` });
  return sockets;
}

describe.skipIf(addon === undefined)(`native data plane pipes${addon ? '' : ` (skipped: ${loaded.addon ? 'addon without the data plane' : loaded.reason})`}`, () => {
  it('idle pairs hold no pipe: 100 of them add their sockets to /proc/self/fd and no pipe but the pooled ones', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=1024', 'PIPE', ['-t', '30']);
    const splicer = await startSplicer(echo);
    // Warm-up: the pools of both threads have their pipes.
    for (const socket of await idlePairs(splicer, 10)) socket.destroy();
    await waitFor(() => addon?.spliceStats().pairs === 0, { what: 'the warm-up pairs to end' });
    splicer.ids.length = 0;
    const before = fdKinds();
    const statsBefore = addon?.spliceStats();
    const sockets = await idlePairs(splicer, 100);
    const after = fdKinds();
    const stats = addon?.spliceStats();
    expect(stats?.threads).toBe(2);
    expect((stats?.pairs ?? 0) - (statsBefore?.pairs ?? 0)).toBe(100);
    // Every pipe open is in a pool: none is held by an idle pair.
    expect(stats?.pipesOpen).toBe(stats?.pooledPipes);
    expect(stats?.pipesOpen).toBeLessThanOrEqual(MAX_PIPES);
    // The test's own client sockets and the plane's two per pair; pipes only as many as the pools grew by.
    expect((after.get('socket') ?? 0) - (before.get('socket') ?? 0)).toBe(3 * 100);
    expect((after.get('pipe') ?? 0) - (before.get('pipe') ?? 0)).toBe(2 * ((stats?.pipesOpen ?? 0) - (statsBefore?.pipesOpen ?? 0)));
    for (const socket of sockets) socket.end();
    await waitFor(() => addon?.spliceStats().pairs === statsBefore?.pairs, { what: 'every pair to end', timeout: WAIT_TIMEOUT });
  });

  it('200 idle pairs, then 256 KiB echoed on all of them at once while stalled pairs hold all 8 pipes: every byte copied, intact', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=1024', 'PIPE', ['-t', '30']);
    // A backend that stops reading: socat writes into sleep's stdin, which nobody reads.
    const { address: stalled } = await startSocatServer('fork,backlog=1024,rcvbuf=4096', 'EXEC:sleep 120');
    const splicer = await startSplicer(echo);
    const staller = await startSplicer(stalled);
    const pairsBefore = addon?.spliceStats().pairs ?? 0;
    const sockets = await idlePairs(splicer, 200);
    // Eight pairs whose client sends more than a pipe holds: each keeps its pipe, full.
    const stuck = await Promise.all(Array.from({ length: MAX_PIPES }, () => connectTcp(staller.address)));
    for (const socket of stuck) socket.write(randomBytes(4 * 1024 * 1024));
    await waitFor(() => addon?.spliceStats().pipesOpen === MAX_PIPES && addon.spliceStats().pooledPipes === 0, { what: 'the stalled pairs to hold every pipe' });
    const copiedBefore = addon?.spliceStats().copiedBytes ?? 0;
    const size = 256 * 1024;
    await Promise.all(
      sockets.map(async (socket) => {
        const payload = randomBytes(size);
        const received = readAll(socket, 120_000);
        socket.end(payload);
        expect(sha256(await received)).toBe(sha256(payload));
      }),
    );
    await waitFor(() => splicer.ids.every((id) => ends.has(id)), { what: 'every echoed pair to end', timeout: WAIT_TIMEOUT });
    // The echoed byte of each went through a pipe; all the rest, both ways, was copied.
    for (const id of splicer.ids) expect(ends.get(id)).toEqual({ bytesIn: size + 1, bytesOut: size + 1, end: 0, errno: 0 });
    expect((addon?.spliceStats().copiedBytes ?? 0) - copiedBefore).toBe(200 * 2 * size);
    // The stalled clients reset: their pipes, with bytes still in them, are closed.
    for (const socket of stuck) socket.resetAndDestroy();
    await waitFor(() => staller.ids.length === MAX_PIPES && staller.ids.every((id) => ends.has(id)), { what: 'the stalled pairs to end' });
    for (const id of staller.ids) expect(ends.get(id)?.end).toBe(2);
    const stats = addon?.spliceStats();
    expect(stats?.pairs).toBe(pairsBefore);
    expect(stats?.pipesOpen).toBe(stats?.pooledPipes);
  });
});
