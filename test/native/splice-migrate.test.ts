/**
 * The native data plane's pairs start on the event loop's thread and move
 * to a thread of the plane once bulky (migrateBytes) or long (migrateMs):
 * a pair that moves mid-stream, with bytes in flight both ways, keeps
 * every byte (socat as the echo, digests compared), FINs and resets still
 * pass after the move, an abort and the idle timeout find a pair on
 * either side, an end is never reported from within spliceAdd, and churn
 * of pairs that move and pairs that stay leaves no descriptor behind. The
 * plane is started here with low thresholds (64 KiB, 150 ms).
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { loadNativeAddon, type NativeAddon } from '../../src/core/native-addon.js';
import { openFds } from '../helpers/proc-stats.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { streamOutcome } from '../helpers/stream-outcome.js';
import { connectTcp, echoRoundTrip, readAll, startTcpBackend } from '../helpers/tcp-backends.js';
import { WAIT_TIMEOUT, waitFor } from '../helpers/wait-for.js';

const loaded = loadNativeAddon();
const addon = loaded.addon?.spliceStart ? (loaded.addon as Required<NativeAddon>) : undefined;
const KiB = 1024;
const MiB = 1024 * KiB;
const MIGRATE_BYTES = 64 * KiB;
const MIGRATE_MS = 150;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

interface PairEnd {
  bytesIn: number;
  bytesOut: number;
  end: 'closed' | 'idle' | 'client-error' | 'backend-error' | 'aborted';
  errno: number;
  /** Told from within a spliceAdd call: never. */
  duringAdd: boolean;
}

const ENDS = ['closed', 'idle', 'client-error', 'backend-error', 'aborted'] as const;
const waiting = new Map<number, (end: PairEnd) => void>();
const reported = new Map<number, PairEnd>();
let adding = false;
addon?.spliceStart(
  (id, bytesIn, bytesOut, end, errno) => {
    const result: PairEnd = { bytesIn, bytesOut, end: ENDS[end] ?? 'closed', errno, duringAdd: adding };
    const resolve = waiting.get(id);
    if (resolve) {
      waiting.delete(id);
      resolve(result);
    } else reported.set(id, result);
  },
  { threads: 2, migrateBytes: MIGRATE_BYTES, migrateMs: MIGRATE_MS },
);

function pairEnd(id: number): Promise<PairEnd> {
  const done = reported.get(id);
  if (done) {
    reported.delete(id);
    return Promise.resolve(done);
  }
  return new Promise((resolve) => waiting.set(id, resolve));
}

function spliceAdd(clientFd: number, backendFd: number, idleMs: number): number {
  adding = true;
  try {
    return (addon as Required<NativeAddon>).spliceAdd(clientFd, backendFd, idleMs);
  } finally {
    adding = false;
  }
}

const fdOf = (socket: Socket): number => (socket as unknown as { _handle: { fd: number } })._handle.fd;
const stats = (): ReturnType<Required<NativeAddon>['spliceStats']> => (addon as Required<NativeAddon>).spliceStats();

interface Splicer {
  address: HostPort;
  ids: number[];
  ends: Promise<PairEnd>[];
  /** The pair's id by the client's port. */
  byPort: Map<number, number>;
}

/**
 * A listener that dials `backend` for each client and hands both sockets
 * to the plane once `before(client, upstream)` resolves (at once when not
 * given): the forwarder's part, without the rest.
 */
async function startSplicer(backend: HostPort, idleMs = 0, before?: (client: Socket, upstream: Socket) => Promise<void>): Promise<Splicer> {
  const ids: number[] = [];
  const ends: Promise<PairEnd>[] = [];
  const byPort = new Map<number, number>();
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    client.on('error', () => undefined);
    const port = client.remotePort ?? 0;
    const upstream = connect({ host: backend.host, port: backend.port, allowHalfOpen: true });
    upstream.pause();
    upstream.on('error', () => client.destroy());
    upstream.once('connect', () => {
      void (before ? before(client, upstream) : Promise.resolve()).then(() => {
        const id = spliceAdd(fdOf(client), fdOf(upstream), idleMs);
        client.destroy();
        upstream.destroy();
        ids.push(id);
        ends.push(pairEnd(id));
        byPort.set(port, id);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { address: { host: '127.0.0.1', port: (server.address() as { port: number }).port }, ids, ends, byPort };
}

describe.skipIf(addon === undefined)(`native data plane, loop and threads${addon ? '' : ` (skipped: ${loaded.addon ? 'addon without the data plane' : loaded.reason})`}`, () => {
  it('a pair that moves to a thread mid-stream keeps every byte: 16 MiB each way through socat on 6 pairs at once, digests compared', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const splicer = await startSplicer(echo);
    const before = stats().migrated;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        const payload = randomBytes(16 * MiB);
        const socket = await connectTcp(splicer.address);
        const received = readAll(socket, 120_000);
        socket.end(payload);
        expect(sha256(await received)).toBe(sha256(payload));
      }),
    );
    const ends = await Promise.all(splicer.ends);
    for (const end of ends) expect(end).toEqual({ bytesIn: 16 * MiB, bytesOut: 16 * MiB, end: 'closed', errno: 0, duringAdd: false });
    expect(stats().migrated - before).toBe(6);
    expect(stats().loopPairs).toBe(0);
  });

  it('a pair that stays small stays on the loop, to its end', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const splicer = await startSplicer(echo);
    const before = stats().migrated;
    const socket = await connectTcp(splicer.address);
    await echoRoundTrip(socket, randomBytes(4 * KiB));
    expect(stats().loopPairs).toBe(1);
    const received = readAll(socket);
    socket.end('bye');
    expect((await received).toString()).toBe('bye');
    expect(await splicer.ends[0]).toMatchObject({ bytesIn: 4 * KiB + 3, bytesOut: 4 * KiB + 3, end: 'closed' });
    expect(stats().migrated).toBe(before);
  });

  it('a pair still talking after migrateMs moves to a thread and goes on talking, then half-closes both ways', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const splicer = await startSplicer(echo);
    const before = stats().migrated;
    const socket = await connectTcp(splicer.address);
    const started = Date.now();
    let rounds = 0;
    // Small round trips (far below migrateBytes) for longer than migrateMs, then more after the move.
    while (stats().migrated === before || rounds < 5) {
      await echoRoundTrip(socket, `ping ${rounds++}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(Date.now() - started).toBeLessThan(WAIT_TIMEOUT);
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(MIGRATE_MS);
    for (let i = 0; i < 5; i++) await echoRoundTrip(socket, `after ${i}`);
    const received = readAll(socket);
    socket.end('last');
    expect((await received).toString()).toBe('last');
    expect(await splicer.ends[0]).toMatchObject({ end: 'closed', errno: 0 });
    expect(stats().migrated - before).toBe(1);
  });

  it('after a move, the backend FIN first and then the client\'s bytes: all of them reach it, and its reset resets the client', async () => {
    const seen: Promise<Buffer>[] = [];
    const backend = await startTcpBackend((socket) => {
      // Bulky before the FIN: the pair is on a thread when the FIN passes.
      socket.end(Buffer.alloc(512 * KiB, 7));
      seen.push(readAll(socket));
    });
    const splicer = await startSplicer(backend.address);
    const socket = await connectTcp(splicer.address);
    expect((await readAll(socket)).length).toBe(512 * KiB);
    const payload = randomBytes(3 * MiB);
    socket.end(payload);
    await waitFor(() => seen.length === 1, { what: 'the backend connection' });
    expect(sha256(await (seen[0] as Promise<Buffer>))).toBe(sha256(payload));
    expect(await splicer.ends[0]).toMatchObject({ end: 'closed', bytesIn: 3 * MiB, bytesOut: 512 * KiB });
  });

  it('a client reset after the move resets the backend', async () => {
    const seen: ReturnType<typeof streamOutcome>[] = [];
    const backend = await startTcpBackend((socket) => seen.push(streamOutcome(socket)));
    const splicer = await startSplicer(backend.address);
    const before = stats().migrated;
    const socket = await connectTcp(splicer.address);
    socket.write(randomBytes(256 * KiB));
    await waitFor(() => seen.length === 1 && stats().migrated > before, { what: 'the pair to move' });
    socket.resetAndDestroy();
    expect(await seen[0]).toMatchObject({ ended: false, error: 'ECONNRESET' });
    expect(await splicer.ends[0]).toMatchObject({ end: 'client-error' });
  });

  it('an abort resets both peers, for a pair on the loop and for one moved to a thread', async () => {
    const seen: ReturnType<typeof streamOutcome>[] = [];
    const backend = await startTcpBackend((socket) => {
      seen.push(streamOutcome(socket));
      socket.write('hello\n');
    });
    const splicer = await startSplicer(backend.address);
    const before = stats().migrated;
    const small = connect({ host: '127.0.0.1', port: splicer.address.port, allowHalfOpen: true });
    onTestFinished(() => void small.destroy());
    const smallOutcome = streamOutcome(small);
    await waitFor(() => splicer.ids.length === 1 && seen.length === 1, { what: 'the small pair' });
    const big = connect({ host: '127.0.0.1', port: splicer.address.port, allowHalfOpen: true });
    onTestFinished(() => void big.destroy());
    const bigOutcome = streamOutcome(big);
    big.write(randomBytes(256 * KiB));
    await waitFor(() => splicer.ids.length === 2 && seen.length === 2 && stats().migrated > before, { what: 'the big pair to move' });
    expect(stats().loopPairs).toBe(1);
    for (const id of splicer.ids) addon?.spliceAbort(id);
    expect(await smallOutcome).toMatchObject({ ended: false, error: 'ECONNRESET', bytes: 6 });
    expect(await bigOutcome).toMatchObject({ ended: false, error: 'ECONNRESET', bytes: 6 });
    for (const outcome of seen) expect(await outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
    for (const end of await Promise.all(splicer.ends)) expect(end).toMatchObject({ end: 'aborted', duringAdd: false });
  });

  it('the idle timeout ends a pair on the loop and one moved to a thread', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const splicer = await startSplicer(echo, 300);
    const before = stats().migrated;
    const quiet = await connectTcp(splicer.address);
    const bulky = await connectTcp(splicer.address);
    await echoRoundTrip(quiet, 'x');
    await echoRoundTrip(bulky, randomBytes(256 * KiB));
    expect(stats().migrated - before).toBe(1);
    const started = Date.now();
    expect((await readAll(quiet)).length).toBe(0);
    expect((await readAll(bulky)).length).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect((await Promise.all(splicer.ends)).map((end) => end.end)).toEqual(['idle', 'idle']);
  });

  it('a pair that ends within spliceAdd (both FINs and bytes waiting) is told later, never from within the call', async () => {
    const backend = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.resume();
      socket.end('bye');
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => backend.close(() => resolve())));
    let clientDone: Promise<void> = Promise.resolve();
    const splicer = await startSplicer({ host: '127.0.0.1', port: (backend.address() as { port: number }).port }, 0, async () => {
      // Wait for the client's bytes and FIN to be sent, and the backend's to come: all there before the hand-over.
      await clientDone;
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    const socket = connect({ host: '127.0.0.1', port: splicer.address.port, allowHalfOpen: true });
    onTestFinished(() => void socket.destroy());
    socket.on('error', () => undefined);
    clientDone = new Promise((resolve) => socket.once('connect', () => socket.end('hi', () => resolve())));
    expect((await readAll(socket)).toString()).toBe('bye');
    expect(await splicer.ends[0]).toEqual({ bytesIn: 2, bytesOut: 3, end: 'closed', errno: 0, duringAdd: false });
  });

  it('leaves no descriptor behind: 400 pairs that move or stay, ending clean, reset, idle or aborted, open fds back to where they were', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=1024', 'PIPE', ['-t', '30']);
    const clean = await startSplicer(echo);
    const idle = await startSplicer(echo, 50);
    const round = async (): Promise<void> => {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const socket = await connectTcp(i % 5 === 3 ? idle.address : clean.address);
          socket.setNoDelay(true);
          // Even: small, stays on the loop; odd: bulky, moves.
          const payload = randomBytes(i % 2 === 0 ? 100 : 200 * KiB);
          if (i % 5 === 0 || i % 5 === 1) {
            const received = readAll(socket, 60_000);
            socket.end(payload);
            expect((await received).length).toBe(payload.length);
          } else if (i % 5 === 2) {
            await echoRoundTrip(socket, payload);
            socket.resetAndDestroy();
          } else if (i % 5 === 3) {
            await echoRoundTrip(socket, payload);
            await readAll(socket);
          } else {
            await echoRoundTrip(socket, payload);
            const outcome = streamOutcome(socket);
            addon?.spliceAbort(clean.byPort.get(socket.localPort ?? 0) ?? 0);
            expect(await outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
          }
          socket.destroy();
        }),
      );
    };
    await round();
    await waitFor(() => stats().pairs === 0, { what: 'the warm-up pairs to end' });
    const baseline = openFds(process.pid);
    const pooled = stats().pooledPipes;
    const migrated = stats().migrated;
    for (let i = 0; i < 40; i++) await round();
    await waitFor(() => stats().pairs === 0, { what: 'every pair to end', timeout: WAIT_TIMEOUT });
    expect(stats().migrated - migrated).toBeGreaterThan(100);
    const morePooled = (): number => stats().pooledPipes - pooled;
    await waitFor(() => openFds(process.pid) <= baseline + 2 * morePooled(), { what: `open fds back to ${baseline} and the pooled pipes` });
    expect(stats().pipesOpen).toBe(stats().pooledPipes);
    expect(openFds(process.pid)).toBe(baseline + 2 * morePooled());
  });
});
