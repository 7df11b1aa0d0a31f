import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { NativeDataPlane } from '../../src/proxy/native-data-plane.js';
import type { NativeDialer } from '../../src/proxy/native-dial.js';
import { blackHole } from '../helpers/black-hole.js';
import { DATA_PLANES } from '../helpers/data-planes.js';
import { loadNativeAddon } from '../../src/core/native-addon.js';
import { NETNS_UNAVAILABLE, createNamespace, startDnsmasqIn, type Namespace } from '../helpers/netns.js';
import { SOCAT_ECHO_FLAGS, startSocatServer } from '../helpers/socat-server.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { linesMatching, startForwarder } from '../helpers/start-forwarder.js';
import { connectTcp, echoRoundTrip, readAll, unusedPort } from '../helpers/tcp-backends.js';
import { TestSource, backend } from '../helpers/test-source.js';
import { waitFor } from '../helpers/wait-for.js';

const native = DATA_PLANES.find((p) => p.name === 'native');
const plane = native?.plane instanceof NativeDataPlane ? native.plane : undefined;
const dialer: NativeDialer | undefined = plane?.dialer;
const loaded = loadNativeAddon();
const addonPath = loaded.addon ? loaded.path : '';
const skip = native?.skip ?? (dialer === undefined ? 'skipped: the native addon has no dials (built before them: npm run build:native)' : undefined);

/** Dials the native dialer made while `run` ran (a counting wrapper around the real one). */
async function nativeDials(run: () => Promise<void>): Promise<number> {
  const real = dialer as NativeDialer;
  const dial = real.dial;
  let count = 0;
  real.dial = (...args) => {
    count++;
    return dial.apply(real, args);
  };
  try {
    await run();
  } finally {
    real.dial = dial;
  }
  return count;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe.skipIf(skip !== undefined)('native dials (the native data plane dials its backends in C)', () => {
  it('forwards through socat with no JavaScript socket for the backend, and every dial ends', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=64', 'PIPE');
    const { forwarder, address } = await startForwarder({ source: new TestSource([backend('127.0.0.1', echo.port)]), dataPlane: plane });
    const payload = Buffer.alloc(256 * 1024, 7);
    const dials = await nativeDials(async () => {
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const socket = await connectTcp(address);
          const echoed = readAll(socket);
          socket.end(payload);
          expect(sha256(await echoed)).toBe(sha256(payload));
        }),
      );
      await waitFor(() => forwarder.activeConnections === 0, { what: 'every connection to close' });
    });
    expect(dials).toBe(20);
    expect(dialer?.pending).toBe(0);
    expect(forwarder.stats).toMatchObject({ accepted: 20, forwarded: 20, failed: 0, connectFailures: 0, bytesIn: 20 * payload.length, bytesOut: 20 * payload.length });
  });

  it('fails over from a refused address to the next, naming ECONNREFUSED as the JavaScript dial does', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=64', 'PIPE');
    const dead = await unusedPort();
    const source = new TestSource([backend('127.0.0.1', dead, { priority: 10 }), backend('127.0.0.1', echo.port, { priority: 20 })]);
    const { forwarder, address, logs } = await startForwarder({ source, dataPlane: plane, ejectAfter: 100 });
    const dials = await nativeDials(async () => {
      const socket = await connectTcp(address);
      await echoRoundTrip(socket, 'after a refusal');
      socket.destroy();
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the connection to close' });
    });
    expect(dials).toBe(2);
    expect(forwarder.stats).toMatchObject({ forwarded: 1, connectFailures: 1, failovers: 1 });
    expect(forwarder.stats.backends.get(`127.0.0.1:${dead}`)?.connectFailures).toBe(1);
    expect(linesMatching(logs, 'debug', /^cannot dial backend$/)[0]).toMatchObject({
      backend: `127.0.0.1:${dead}`,
      error: `cannot dial backend "127.0.0.1:${dead}": ECONNREFUSED`,
    });
  });

  it('resets the client when every backend refuses, with the same summary line as the JavaScript dial', async () => {
    const [p1, p2] = [await unusedPort(), await unusedPort()];
    const source = new TestSource([backend('127.0.0.1', p1, { priority: 10 }), backend('127.0.0.1', p2, { priority: 20 })]);
    const { forwarder, address, logs } = await startForwarder({ source, dataPlane: plane }, 'info');
    const socket = await connectTcp(address);
    const error = await new Promise<string>((resolve) => socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message)));
    expect(error).toBe('ECONNRESET');
    await waitFor(() => forwarder.activeConnections === 0, { what: 'the connection to be finished' });
    expect(forwarder.stats).toMatchObject({ accepted: 1, forwarded: 0, failed: 1, connectFailures: 2 });
    expect(logs.map((line) => line.msg)).toEqual([
      `cannot reach any backend of "_svc._tcp.env1.skydns.local." (tried 127.0.0.1:${p1}: ECONNREFUSED, 127.0.0.1:${p2}: ECONNREFUSED)`,
    ]);
  });

  it('delivers what the client sent before its backend was dialed', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=64', 'PIPE');
    const source = new TestSource([backend('127.0.0.1', echo.port)]);
    source.hold();
    const { forwarder, address } = await startForwarder({ source, dataPlane: plane });
    const payload = Buffer.alloc(64 * 1024, 3);
    const socket = await connectTcp(address);
    const echoed = readAll(socket);
    socket.end(payload);
    await waitFor(() => source.calls === 1, { what: 'the forwarder to ask for backends' });
    // The bytes (and the FIN) wait in the kernel while no backend is dialed yet.
    expect(forwarder.stats.forwarded).toBe(0);
    source.release();
    expect(sha256(await echoed)).toBe(sha256(payload));
  });

  it('leaves a dial seam in charge: with `dial` the forwarder dials in JavaScript and still forwards natively', async () => {
    const { address: echo } = await startSocatServer('fork,backlog=64', 'PIPE');
    let seamDials = 0;
    const dial = (host: string, port: number): Socket => {
      seamDials++;
      return connect({ host, port, allowHalfOpen: true }).pause();
    };
    const { forwarder, address } = await startForwarder({ source: new TestSource([backend('127.0.0.1', echo.port)]), dataPlane: plane, dial });
    const dials = await nativeDials(async () => {
      const socket = await connectTcp(address);
      await echoRoundTrip(socket, 'through the seam');
      socket.destroy();
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the connection to close' });
    });
    expect(dials).toBe(0);
    expect(seamDials).toBe(1);
  });
});

const nsTitle = `srvlink run on the native plane: native dials to a black hole${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`;

/** Start socat as an echo inside `ns` on 127.0.0.1:`port`. */
async function socatEchoIn(ns: Namespace, port: number): Promise<void> {
  const child = ns.spawn('socat', ['-d', '-d', ...SOCAT_ECHO_FLAGS, `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, 'PIPE']);
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('listening on')) resolve();
    });
    void child.exited.then((code) => reject(new Error(`socat exited with ${code}: ${log}`)));
  });
}

/** From inside `ns`: connect, send `bytes` at once and a FIN, read to the end; the digest of what came back and the ms it took. */
async function echoFrom(ns: Namespace, port: number, bytes: number): Promise<{ ms: number; sent: string; received: string; end: string }> {
  const script = `
    const { createHash } = require('crypto');
    const started = Date.now();
    const payload = Buffer.alloc(${bytes});
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 255;
    const chunks = [];
    const s = require('net').connect(${port}, '127.0.0.1', () => s.end(payload));
    s.on('data', (d) => chunks.push(d));
    let end = 'fin';
    s.on('error', (e) => (end = e.code || e.message));
    s.on('close', () => console.log(JSON.stringify({
      ms: Date.now() - started,
      sent: createHash('sha256').update(payload).digest('hex'),
      received: createHash('sha256').update(Buffer.concat(chunks)).digest('hex'),
      end,
    })));`;
  const result = await ns.exec('node', ['-e', script], { timeout: 60_000 });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { ms: number; sent: string; received: string; end: string };
}

describe.skipIf(NETNS_UNAVAILABLE !== undefined || skip !== undefined)(nsTitle, () => {
  const SRV = '_svc._tcp.env1.skydns.local';
  const LISTEN = 2181;
  const ECHO_PORT = 7001;
  const HOLE_PORT = 5432;

  /** srvlink run inside `ns` on the native plane, its one mapping on LISTEN, backends from dnsmasq's SRV records in `ns`. */
  async function start(ns: Namespace, extra: string[]): Promise<SrvlinkProcess> {
    const proc = spawnSrvlink(
      ['run', '--domain', 'env1.skydns.local', '--cluster-dns', '127.0.0.1:53', '--map', `127.0.0.1:${LISTEN}=svc`, '--dns-listen', 'none', '--data-plane', 'native', '--log-level', 'debug', ...extra],
      { spawner: (command, args, env) => ns.spawn(command, args, { env }) },
    );
    await proc.waitForLog((l) => l.msg === 'srvlink run ready');
    return proc;
  }

  /** A namespace with a black-holed host (SRV priority 1) and, with `echo`, socat as an echo on 127.0.0.1 (priority 2). */
  async function namespaceWith(subnet: number, echo: boolean): Promise<{ ns: Namespace; hole: string }> {
    const ns = await createNamespace();
    const { hosts } = await blackHole(ns, { subnet, count: 1 });
    const hole = hosts[0] as string;
    if (echo) await socatEchoIn(ns, ECHO_PORT);
    await startDnsmasqIn(ns, {
      srv: [
        { name: SRV, target: 'hole.env1.skydns.local', port: HOLE_PORT, priority: 1, weight: 10 },
        ...(echo ? [{ name: SRV, target: 'echo.env1.skydns.local', port: ECHO_PORT, priority: 2, weight: 10 }] : []),
      ],
      hosts: [
        { name: 'hole.env1.skydns.local', address: hole },
        { name: 'echo.env1.skydns.local', address: '127.0.0.1' },
      ],
    });
    return { ns, hole: `${hole}:${HOLE_PORT}` };
  }

  it('times a black-holed backend out after the connect timeout and fails over, with the bytes the client sent meanwhile intact', async () => {
    const { ns, hole } = await namespaceWith(73, true);
    const proc = await start(ns, ['--connect-timeout', '300ms', '--eject-after', '100']);
    const result = await echoFrom(ns, LISTEN, 1024 * 1024);
    expect(result.end).toBe('fin');
    expect(result.received).toBe(result.sent);
    expect(result.ms).toBeGreaterThanOrEqual(290);
    const line = await proc.waitForLog((l) => l.msg === 'cannot dial backend');
    expect(line).toMatchObject({ backend: hole, error: `cannot dial backend "${hole}": timed out after 300 ms` });
    await proc.waitForLog((l) => l.msg === 'connection forwarded' && l.backend === `127.0.0.1:${ECHO_PORT}`);
  });

  it('dials aborted or timed out leave every other socket of the loop alone, whichever takes their descriptor numbers next', async () => {
    const { ns, hole } = await namespaceWith(75, false);
    const [host, port] = hole.split(':') as [string, string];
    const script = `
      const net = require('net');
      // An echo in this process, listening before any dial: its descriptor is not one the dials free.
      const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s)).listen(0, '127.0.0.1');
      const addon = { exports: {} };
      process.dlopen(addon, ${JSON.stringify(addonPath)});
      const a = addon.exports;
      const ends = [];
      a.dialStart((id, fd, error) => ends.push(error));
      // Dials that hang: half time out after 100 ms, the others are aborted at 300 ms.
      const ids = [];
      for (let i = 0; i < 40; i++) ids.push(a.dialConnect('${host}', ${port}, i % 2 ? 100 : 60000));
      setTimeout(() => {
        for (const id of ids) a.dialAbort(id);
        // Sockets made at once: the lowest free descriptor numbers are those the dials held.
        let ok = 0;
        let done = 0;
        const errors = [];
        for (let i = 0; i < 40; i++) {
          const s = net.connect(echo.address().port, '127.0.0.1', () => s.end('x'));
          let got = '';
          s.setTimeout(10000, () => s.destroy(new Error('no event for 10 s')));
          s.on('data', (d) => (got += d));
          s.on('error', (e) => errors.push(e.code || e.message));
          s.on('close', () => {
            if (got === 'x') ok++;
            if (++done < 40) return;
            console.log(JSON.stringify({ ok, ends: ends.sort((x, y) => x - y), errors }));
            echo.close();
          });
        }
      }, 300);`;
    const result = await ns.exec('node', ['-e', script], { timeout: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ ok: 40, ends: [...Array<number>(20).fill(-2), ...Array<number>(20).fill(-1)], errors: [] });
  });

  it('aborts a dial under way when a drain runs out of time: the client is reset, the process exits', async () => {
    const { ns, hole } = await namespaceWith(74, false);
    const proc = await start(ns, ['--connect-timeout', '60s', '--dial-deadline', '60s', '--drain-timeout', '200ms']);
    const client = echoFrom(ns, LISTEN, 10);
    // The dial is under way once its SYN waits for an answer that never comes.
    await waitFor(async () => (await ns.exec('ss', ['-Htn', 'state', 'syn-sent', 'dst', hole])).stdout.trim() !== '', { what: 'the dial to the black hole' });
    expect(await proc.stop('SIGTERM')).toBe(0);
    await proc.waitForLog((l) => l.msg === 'drain timeout: closing the remaining connections');
    const result = await client;
    expect(result.end).toBe('ECONNRESET');
    expect(result.received).not.toBe(result.sent);
  });
});
