/**
 * The native data plane at its own level (native/src/splice-plane.c through
 * the addon): real sockets handed over by descriptor, with socat as a peer.
 * Bytes arrive intact both ways, FINs pass in both orders, a reset on either
 * side resets the other (after a half-close too), the idle timeout and an
 * abort end a pair, an exit with bytes still in the pipes resets both peers,
 * and no descriptor is left behind.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { loadNativeAddon, type NativeAddon } from '../../src/core/native-addon.js';
import { openFds } from '../helpers/proc-stats.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { streamOutcome } from '../helpers/stream-outcome.js';
import { tempDir } from '../helpers/temp-dir.js';
import { connectTcp, readAll, startTcpBackend } from '../helpers/tcp-backends.js';
import { WAIT_TIMEOUT, waitFor } from '../helpers/wait-for.js';

const loaded = loadNativeAddon();
const addon = loaded.addon?.spliceStart ? (loaded.addon as Required<NativeAddon>) : undefined;
const MiB = 1024 * 1024;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

/** One pair's end as the plane reports it. */
interface PairEnd {
  bytesIn: number;
  bytesOut: number;
  end: 'closed' | 'idle' | 'client-error' | 'backend-error' | 'aborted';
  errno: number;
}

const ENDS = ['closed', 'idle', 'client-error', 'backend-error', 'aborted'] as const;
const waiting = new Map<number, (end: PairEnd) => void>();
const reported = new Map<number, PairEnd>();
addon?.spliceStart((id, bytesIn, bytesOut, end, errno) => {
  const result: PairEnd = { bytesIn, bytesOut, end: ENDS[end] ?? 'closed', errno };
  const resolve = waiting.get(id);
  if (resolve) {
    waiting.delete(id);
    resolve(result);
  } else reported.set(id, result);
});

function pairEnd(id: number): Promise<PairEnd> {
  const done = reported.get(id);
  if (done) {
    reported.delete(id);
    return Promise.resolve(done);
  }
  return new Promise((resolve) => waiting.set(id, resolve));
}

const fdOf = (socket: Socket): number => (socket as unknown as { _handle: { fd: number } })._handle.fd;

/** A listener that dials `backend` for each client and hands both sockets to the plane: what the forwarder does, without the rest. */
async function startSplicer(backend: HostPort, idleMs = 0): Promise<{ address: HostPort; ids: number[]; ends: Promise<PairEnd>[] }> {
  const ids: number[] = [];
  const ends: Promise<PairEnd>[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    client.on('error', () => undefined);
    const upstream = connect({ host: backend.host, port: backend.port, allowHalfOpen: true });
    // Paused before it connects: no byte is read into JavaScript.
    upstream.pause();
    upstream.on('error', () => client.destroy());
    upstream.once('connect', () => {
      const id = (addon as Required<NativeAddon>).spliceAdd(fdOf(client), fdOf(upstream), idleMs);
      client.destroy();
      upstream.destroy();
      ids.push(id);
      ends.push(pairEnd(id));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const bound = server.address() as { port: number };
  return { address: { host: '127.0.0.1', port: bound.port }, ids, ends };
}

function halfOpenClient(address: HostPort): Socket {
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
  onTestFinished(() => void socket.destroy());
  return socket;
}

describe.skipIf(addon === undefined)(`native data plane${addon ? '' : ` (skipped: ${loaded.addon ? 'addon without the data plane' : loaded.reason})`}`, () => {
  it('carries 1 MiB each way intact on 20 parallel pairs through socat (an echo) and reports the bytes', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const splicer = await startSplicer(echo);
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const payload = randomBytes(MiB);
        const socket = await connectTcp(splicer.address);
        const received = readAll(socket, 60_000);
        socket.end(payload);
        expect(sha256(await received)).toBe(sha256(payload));
      }),
    );
    const ends = await Promise.all(splicer.ends);
    expect(ends).toHaveLength(20);
    for (const end of ends) expect(end).toEqual({ bytesIn: MiB, bytesOut: MiB, end: 'closed', errno: 0 });
  });

  it('client FIN first: the backend sees it and its whole reply, sent after, reaches the client', async () => {
    const reply = randomBytes(3 * MiB);
    const requests: Buffer[] = [];
    const backend = await startTcpBackend((socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.once('end', () => {
        requests.push(Buffer.concat(chunks));
        socket.end(reply);
      });
    });
    const splicer = await startSplicer(backend.address);
    const socket = await connectTcp(splicer.address);
    const request = randomBytes(2 * MiB);
    const received = readAll(socket);
    socket.end(request);
    expect(sha256(await received)).toBe(sha256(reply));
    expect(requests.map(sha256)).toEqual([sha256(request)]);
    expect(await splicer.ends[0]).toMatchObject({ end: 'closed', bytesIn: 2 * MiB, bytesOut: 3 * MiB });
  });

  it('backend FIN first: the client sees it and can still send everything', async () => {
    const received: Promise<Buffer>[] = [];
    const backend = await startTcpBackend((socket) => {
      socket.end('bye\n');
      received.push(readAll(socket));
    });
    const splicer = await startSplicer(backend.address);
    const socket = await connectTcp(splicer.address);
    expect((await readAll(socket)).toString()).toBe('bye\n');
    const payload = randomBytes(2 * MiB);
    socket.end(payload);
    await waitFor(() => received.length === 1, { what: 'the backend connection' });
    expect(sha256(await (received[0] as Promise<Buffer>))).toBe(sha256(payload));
    expect(await splicer.ends[0]).toMatchObject({ end: 'closed', bytesIn: 2 * MiB, bytesOut: 4 });
  });

  it('socat SIGKILLed with SO_LINGER 0 mid-stream: the client sees a reset, and the end is the backend\'s error', async () => {
    const { socat, address } = await startSocatServer('linger=0', 'PIPE');
    const splicer = await startSplicer(address);
    const socket = halfOpenClient(splicer.address);
    let echoed = 0;
    const outcome = streamOutcome(socket, undefined, (chunk) => (echoed += chunk.length));
    const chunk = randomBytes(16 * 1024);
    const pump = setInterval(() => socket.writable && socket.write(chunk), 2);
    onTestFinished(() => clearInterval(pump));
    await waitFor(() => echoed >= 256 * 1024, { what: 'bytes echoed by socat' });
    await socat.kill('SIGKILL');
    expect(await outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
    clearInterval(pump);
    expect(await splicer.ends[0]).toMatchObject({ end: 'backend-error' });
  });

  it('a client reset mid-stream resets the backend', async () => {
    const seen: ReturnType<typeof streamOutcome>[] = [];
    const backend = await startTcpBackend((socket) => seen.push(streamOutcome(socket)));
    const splicer = await startSplicer(backend.address);
    const socket = await connectTcp(splicer.address);
    socket.write(randomBytes(256 * 1024));
    await waitFor(() => seen.length === 1, { what: 'the backend connection' });
    socket.resetAndDestroy();
    expect(await seen[0]).toMatchObject({ ended: false, error: 'ECONNRESET' });
    expect(await splicer.ends[0]).toMatchObject({ end: 'client-error' });
  });

  it('a reset after a half-close (the backend said all, then reset) still resets the client', async () => {
    const backend = await startTcpBackend((socket) => {
      socket.end('done\n');
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got >= 64 * 1024) socket.resetAndDestroy();
      });
    });
    const splicer = await startSplicer(backend.address);
    const socket = halfOpenClient(splicer.address);
    const errors: string[] = [];
    socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
    const received = readAll(socket);
    expect((await received).toString()).toBe('done\n');
    const chunk = randomBytes(16 * 1024);
    const pump = setInterval(() => socket.writable && socket.write(chunk), 2);
    onTestFinished(() => clearInterval(pump));
    await waitFor(() => socket.closed, { what: 'the client to be reset' });
    clearInterval(pump);
    expect(errors.length).toBeGreaterThan(0);
    expect(['ECONNRESET', 'EPIPE']).toContain(errors[0]);
    const end = await (splicer.ends[0] as Promise<PairEnd>);
    expect(end.end).toBe('backend-error');
    // ECONNRESET or EPIPE.
    expect([104, 32]).toContain(end.errno);
  });

  it('ends a pair idle for the idle timeout (a FIN both ways) and keeps a busy one', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const splicer = await startSplicer(echo, 300);
    const quiet = await connectTcp(splicer.address);
    const busy = await connectTcp(splicer.address);
    const started = Date.now();
    const quietEnd = readAll(quiet);
    const busyTalk = setInterval(() => busy.write('x'), 50);
    onTestFinished(() => clearInterval(busyTalk));
    expect((await quietEnd).length).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(busy.closed).toBe(false);
    clearInterval(busyTalk);
    const ends = await Promise.all(splicer.ends);
    expect(ends.map((end) => end.end)).toEqual(['idle', 'idle']);
  });

  it('an abort resets both peers', async () => {
    const seen: ReturnType<typeof streamOutcome>[] = [];
    const backend = await startTcpBackend((socket) => {
      seen.push(streamOutcome(socket));
      socket.write('hello\n');
    });
    const splicer = await startSplicer(backend.address);
    const socket = halfOpenClient(splicer.address);
    const outcome = streamOutcome(socket);
    await waitFor(() => splicer.ids.length === 1 && seen.length === 1, { what: 'the pair' });
    addon?.spliceAbort(splicer.ids[0] as number);
    expect(await outcome).toMatchObject({ ended: false, error: 'ECONNRESET', bytes: 6 });
    expect(await seen[0]).toMatchObject({ ended: false, error: 'ECONNRESET' });
    expect(await splicer.ends[0]).toMatchObject({ end: 'aborted' });
  });

  it('a process that exits with bytes still in its pipes resets both peers: no clean FIN on a cut stream', async () => {
    const dir = tempDir();
    const script = join(dir, 'splice-exit.mjs');
    // The tiny forwarder: one pair handed to the plane, then exit() on the word "exit".
    writeFileSync(
      script,
      `import { connect, createServer } from 'node:net';
const mod = { exports: {} };
process.dlopen(mod, ${JSON.stringify(loaded.addon ? (loaded as { path: string }).path : '')});
const addon = mod.exports;
addon.spliceStart(() => undefined);
const [host, port] = process.argv.slice(2);
const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
  const upstream = connect({ host, port: Number(port), allowHalfOpen: true });
  upstream.pause();
  upstream.once('connect', () => {
    addon.spliceAdd(client._handle.fd, upstream._handle.fd, 0);
    client.destroy();
    upstream.destroy();
    console.log('spliced');
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.stdin.on('data', () => process.exit(0));
`,
    );
    let backendSide: Socket | undefined;
    const backend = await startTcpBackend((socket) => {
      backendSide = socket;
      // Never reads: what the client sends stays in the kernel buffers and the plane's pipe.
      socket.pause();
    });
    const child = execFile('setpriv', ['--pdeathsig', 'KILL', process.execPath, script, backend.address.host, String(backend.address.port)]);
    onTestFinished(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitFor(() => /^\d+\n/.test(out), { what: 'the script to listen' });
    const socket = halfOpenClient({ host: '127.0.0.1', port: Number(out.split('\n')[0]) });
    const outcome = streamOutcome(socket);
    socket.write(randomBytes(16 * MiB));
    await waitFor(() => out.includes('spliced') && backendSide !== undefined, { what: 'the pair to be spliced' });
    // Wait until the client can write no more: the backend's buffer and the pipe are full.
    let last = -1;
    await waitFor(
      () => {
        const pending = socket.writableLength;
        const still = pending === last;
        last = pending;
        return still;
      },
      { what: 'the stream to stall', interval: 200 },
    );
    const backendOutcome = streamOutcome(backendSide as Socket);
    (backendSide as Socket).resume();
    child.stdin?.write('exit\n');
    expect(await outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
    expect(await backendOutcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
  });

  it('leaves no descriptor behind: after 300 pairs (clean, reset, idle), open fds are back to where they were', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const clean = await startSplicer(echo);
    const idle = await startSplicer(echo, 50);
    const round = async (): Promise<void> => {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const socket = await connectTcp(i % 3 === 2 ? idle.address : clean.address);
          if (i % 3 === 0) {
            const received = readAll(socket);
            socket.end('hello');
            await received;
          } else if (i % 3 === 1) {
            socket.write('x');
            await new Promise((resolve) => setTimeout(resolve, 1));
            socket.resetAndDestroy();
          } else await readAll(socket);
          socket.destroy();
        }),
      );
    };
    // Warm-up: fills the pool of pipes.
    await round();
    await waitFor(() => addon?.spliceStats().pairs === 0, { what: 'the warm-up pairs to end' });
    const baseline = openFds(process.pid);
    const pooled = addon?.spliceStats().pooledPipes;
    for (let i = 0; i < 30; i++) await round();
    await waitFor(() => addon?.spliceStats().pairs === 0, { what: 'every pair to end', timeout: WAIT_TIMEOUT });
    // The pools of the plane's threads may keep a few more empty pipes than after the warm-up (two descriptors each), never more than their most.
    const morePooled = (): number => (addon?.spliceStats().pooledPipes ?? 0) - (pooled ?? 0);
    await waitFor(() => openFds(process.pid) <= baseline + 2 * morePooled(), { what: `open fds back to ${baseline} and the pooled pipes` });
    const stats = addon?.spliceStats();
    expect(stats?.pooledPipes).toBeLessThanOrEqual((stats?.poolMax ?? 0) * (stats?.threads ?? 0));
    expect(stats?.pipesOpen).toBe(stats?.pooledPipes);
    expect(openFds(process.pid)).toBe(baseline + 2 * morePooled());
  });
});
