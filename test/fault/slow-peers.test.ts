/**
 * Slow peers against a real `srvlink run`: a client that never reads while
 * its backend streams, and a backend that never reads while its client
 * streams. srvlink must hold back the fast side (backpressure) instead of
 * buffering: the streaming side stalls, srvlink's memory stays bounded, and
 * once the slow side reads every byte arrives, in order. With
 * `--idle-timeout`, stalled pairs are closed once it runs out and what was
 * delivered is still correct. Each part runs once per data plane
 * (`--data-plane native`, then `js`) and prints one summary line naming it.
 */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { readPattern, writePattern, type PatternWriter } from '../helpers/byte-stream.js';
import { rss } from '../helpers/proc-stats.js';
import { RUN_DATA_PLANES, type RunDataPlane } from '../helpers/run-data-planes.js';
import { reportScenario } from '../helpers/scenario-summary.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { connectTcp, echoRoundTrip, startEchoBackend, startTcpBackend, type TcpBackend } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';

/** What a streaming side offers: far more than kernel socket buffers hold (up to ~70 MiB per hop here), so only backpressure stops it. */
const OFFERED = 256 * 2 ** 20;
/** srvlink's memory may grow by this much over its baseline while both pairs are stalled (generous: GC, kernel-side buffers are not in RSS). */
const RSS_GROWTH_BOUND = 96 * 2 ** 20;
/** A writer that has not got rid of a byte for this long is stalled. */
const STALL_MS = 1000;

interface Pair {
  client: Socket;
  backend: Socket;
}

async function startRun(backend: TcpBackend, plane: RunDataPlane, extra: string[] = []): Promise<{ proc: SrvlinkProcess; address: HostPort }> {
  const proc = spawnSrvlink([
    'run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', '--discovery', 'static',
    '--map', '127.0.0.1:0=stream', '--backend', `stream=127.0.0.1:${backend.address.port}`, ...plane.args, ...extra,
  ]);
  const address = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'address');
  expect((await proc.waitForLog((l) => l.msg === 'srvlink run ready')).settings).toMatchObject({ dataPlane: plane.name });
  return { proc, address };
}

async function openPair(address: HostPort, backend: TcpBackend): Promise<Pair> {
  const client = await connectTcp(address);
  return { client, backend: await backend.nextConnection() };
}

/** Pair 1: the backend streams, the client reads nothing. Pair 2: the client streams, the backend reads nothing. */
async function startSlowPairs(address: HostPort, backend: TcpBackend): Promise<{ toClient: Pair; backendWriter: PatternWriter; toBackend: Pair; clientWriter: PatternWriter }> {
  const toClient = await openPair(address, backend);
  toClient.client.pause();
  const backendWriter = writePattern(toClient.backend, OFFERED);
  const toBackend = await openPair(address, backend);
  toBackend.backend.pause();
  const clientWriter = writePattern(toBackend.client, OFFERED);
  return { toClient, backendWriter, toBackend, clientWriter };
}

/** Resolves once `writer` has been stuck for STALL_MS (or got everything out: then srvlink did not push back). */
function stalled(writer: PatternWriter): Promise<void> {
  return waitFor(() => writer.written >= OFFERED || (writer.blocked && performance.now() - writer.lastProgress > STALL_MS), {
    what: 'the streaming side to stall',
    timeout: 60_000,
    interval: 50,
  });
}

/** srvlink forwards one echo round trip (warms it up before the baseline). */
async function warmUp(address: HostPort): Promise<void> {
  const socket = await connectTcp(address);
  await echoRoundTrip(socket, Buffer.alloc(1 << 20, 7));
  socket.destroy();
}

describe.each(RUN_DATA_PLANES)('on the $name data plane', (plane) => {
  if (plane.skip) it.skip(plane.skip, () => undefined);

  describe.skipIf(plane.skip !== undefined)('slow peers through srvlink run', () => {
    it('a never-reading client and a never-reading backend are held back, memory bounded; every byte arrives once they read', async () => {
      const backend = await startTcpBackend(() => undefined, { name: 'stream' });
      const echo = await startEchoBackend();
      const { proc, address } = await startRun(backend, plane);
      const { address: echoAddress } = await startRun(echo, plane);
      await warmUp(echoAddress);
      const pid = proc.child.pid as number;
      const baseline = rss(pid);

      const { toClient, backendWriter, toBackend, clientWriter } = await startSlowPairs(address, backend);
      await Promise.all([stalled(backendWriter), stalled(clientWriter)]);
      const growth = rss(pid) - baseline;

      // The slow sides read at last: everything the fast sides wrote arrives, then their FIN.
      const atClient = readPattern(toClient.client);
      const atBackend = readPattern(toBackend.backend);
      backendWriter.finish();
      clientWriter.finish();
      const ends = await Promise.all([atClient.ended, atBackend.ended]);
      // Lost: bytes written that never arrived, or arrived wrong. The line first: a failing run still says what it saw.
      const summary = reportScenario({
        scenario: `slow-peers backpressure (${plane.name})`,
        connections: 2,
        bytesVerified: atClient.received - atClient.mismatched + atBackend.received - atBackend.mismatched,
        lost: backendWriter.written - atClient.received + atClient.mismatched + clientWriter.written - atBackend.received + atBackend.mismatched,
        extra:
          `stalled after ${backendWriter.written} bytes (backend to a never-reading client) and ${clientWriter.written} bytes (client to a never-reading backend), ` +
          `srvlink RSS +${Math.round(growth / 2 ** 20)} MiB while stalled`,
      });
      expect(backendWriter.written).toBeLessThan(OFFERED);
      expect(clientWriter.written).toBeLessThan(OFFERED);
      expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
      expect(ends).toEqual(['fin', 'fin']);
      expect({ received: atClient.received, mismatched: atClient.mismatched }).toEqual({ received: backendWriter.written, mismatched: 0 });
      expect({ received: atBackend.received, mismatched: atBackend.mismatched }).toEqual({ received: clientWriter.written, mismatched: 0 });
      expect(proc.child.exitCode).toBeNull();
      expect(summary.lost).toBe(0);
    }, 120_000);

    it('with --idle-timeout, stalled pairs are closed once it runs out; what was delivered is correct', async () => {
      const backend = await startTcpBackend(() => undefined, { name: 'stream' });
      const { proc, address } = await startRun(backend, plane, ['--idle-timeout', '1s', '--log-level', 'debug']);

      const { toClient, backendWriter, toBackend, clientWriter } = await startSlowPairs(address, backend);
      const stalledAt = performance.now();

      // srvlink closes both pairs for idleness (its log says so), while neither slow side has read a byte.
      await waitFor(() => proc.logs.filter((l) => l.msg === 'connection closed' && l.end === 'idle').length === 2, {
        what: 'both pairs closed for idleness',
        timeout: 30_000,
        interval: 50,
      });
      const closedAfter = performance.now() - stalledAt;
      expect(closedAfter).toBeGreaterThanOrEqual(1000);
      expect(backendWriter.written).toBeLessThan(OFFERED);
      expect(clientWriter.written).toBeLessThan(OFFERED);

      // The fast sides learn it (their sockets are reset); the slow sides read what had been
      // delivered, every byte as sent, then the end of the stream. (Linux hands a reader the data
      // queued before a reset, then end-of-file: a slow reader cannot tell the cut, whatever srvlink sends.)
      await Promise.all([backendWriter.done, clientWriter.done]);
      const atClient = readPattern(toClient.client);
      const atBackend = readPattern(toBackend.backend);
      const ends = await Promise.all([atClient.ended, atBackend.ended]);
      expect(atClient.mismatched).toBe(0);
      expect(atBackend.mismatched).toBe(0);
      expect(atClient.received).toBeLessThanOrEqual(backendWriter.written);
      expect(atBackend.received).toBeLessThanOrEqual(clientWriter.written);
      expect(proc.child.exitCode).toBeNull();
      // The idle timeout cuts the streams by design: lost here is a byte delivered wrong.
      const summary = reportScenario({
        scenario: `slow-peers idle-timeout (${plane.name})`,
        connections: 2,
        bytesVerified: atClient.received - atClient.mismatched + atBackend.received - atBackend.mismatched,
        lost: atClient.mismatched + atBackend.mismatched,
        extra:
          `both closed ${Math.round(closedAfter)} ms after the stall (--idle-timeout 1s), slow sides saw ${ends.join(' and ')} ` +
          `after ${atClient.received} and ${atBackend.received} of ${backendWriter.written} and ${clientWriter.written} bytes sent`,
      });
      expect(summary.lost).toBe(0);
    }, 120_000);
  });
});
