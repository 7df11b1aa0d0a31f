/**
 * Resets through `srvlink run`, as a process: a stream that was cut reaches
 * the other side as a TCP reset (ECONNRESET), never as a FIN that reads like
 * the end of a complete stream. Peers: a raw reset from a Node socket, and
 * socat (which we did not write) SIGKILLed with SO_LINGER 0. Each part prints
 * one summary line: the bytes read before the reset are checked to be what
 * the other side sent (a prefix of it), and a cut stream that did not end in
 * a reset, or bytes that differ, are lost. Every part runs once per data
 * plane (`--data-plane native`, then `js`), the plane named in its line.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { RUN_DATA_PLANES, type RunDataPlane } from '../helpers/run-data-planes.js';
import { reportScenario } from '../helpers/scenario-summary.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { streamOutcome, type StreamOutcome } from '../helpers/stream-outcome.js';
import { startTcpBackend } from '../helpers/tcp-backends.js';
import { WAIT_TIMEOUT, waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

/** `srvlink run` forwarding one port to `backend` on `plane`, no DNS; resolves with its listener. */
async function startRun(backend: HostPort, plane: RunDataPlane): Promise<HostPort> {
  const proc = spawnSrvlink([
    'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none',
    '--map', '127.0.0.1:0=svc', '--backend', `svc=${backend.host}:${backend.port}`, ...plane.args,
  ]);
  const line = await proc.waitForLog((l) => l.msg === 'listening');
  expect((await proc.waitForLog((l) => l.msg === 'srvlink run ready')).settings).toMatchObject({ dataPlane: plane.name });
  return parseHostPort(String(line.address), 'address');
}

/** Whether `outcome` read a prefix of `sent`, byte for byte (its sha256 is that of the first `outcome.bytes` bytes). */
function readPrefixOf(outcome: StreamOutcome, sent: Buffer): boolean {
  return outcome.bytes <= sent.length && createHash('sha256').update(sent.subarray(0, outcome.bytes)).digest('hex') === outcome.sha256;
}

/** Cut streams that ended in a reset and read a prefix of what was sent: verified; any other is lost. */
function tally(results: readonly { outcome: StreamOutcome; sent: Buffer }[]): { verified: number; lost: number } {
  let verified = 0;
  let lost = 0;
  for (const { outcome, sent } of results) {
    if (outcome.ended || outcome.error !== 'ECONNRESET' || !readPrefixOf(outcome, sent)) lost++;
    else verified += outcome.bytes;
  }
  return { verified, lost };
}

/** A client that keeps its side open after the peer's FIN: `streamOutcome` tells a FIN from a reset. */
function halfOpenClient(address: HostPort): Socket {
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
  onTestFinished(() => void socket.destroy());
  return socket;
}

describe.each(RUN_DATA_PLANES)('on the $name data plane', (plane) => {
  if (plane.skip) it.skip(plane.skip, () => undefined);

  describe.skipIf(plane.skip !== undefined)('resets through srvlink run', () => {
    it('a backend that writes and then resets reaches the client as a reset, at every size and timing', async () => {
      const sizes = [0, 100, 64 * 1024, 4 * 1024 * 1024];
      let round = 0;
      const backend = await startTcpBackend((socket) => {
        const size = sizes[round % sizes.length] as number;
        // Every other pass resets at once (srvlink may still be dialing), the others once the bytes are out.
        const immediate = Math.floor(round / sizes.length) % 2 === 0;
        round++;
        if (immediate) {
          if (size > 0) socket.write(randomBytes(size));
          setImmediate(() => socket.resetAndDestroy());
        } else socket.write(randomBytes(size), () => socket.resetAndDestroy());
      });
      const address = await startRun(backend.address, plane);
      const seen: string[] = [];
      for (let i = 0; i < sizes.length * 6; i++) {
        // socat, a client we did not write, says "Connection reset by peer" at -d -d; a FIN ends it quietly.
        // A reset during the connect makes socat fail: its stderr says so all the same.
        const { stderr } = await run('socat', ['-d', '-d', '-u', `TCP:${address.host}:${address.port}`, 'OPEN:/dev/null'], { timeout: WAIT_TIMEOUT }).catch(
          (err: { stderr?: string }) => ({ stderr: err.stderr ?? String(err) }),
        );
        seen.push(/reset by peer/i.test(stderr) ? 'reset' : `round ${i} (${sizes[i % sizes.length]} bytes): no reset`);
      }
      const cut = seen.filter((s) => s !== 'reset');
      // socat reads into /dev/null: what it got is not checked here (the parts below check it).
      const summary = reportScenario({
        scenario: `resets backend-reset (${plane.name})`,
        connections: seen.length,
        bytesVerified: 0,
        lost: cut.length,
        extra: `${seen.length - cut.length} resets seen by socat, backend writing ${sizes.join(', ')} bytes then resetting, at once or once written`,
      });
      expect(cut).toEqual([]);
      expect(summary.lost).toBe(0);
    });

    it('a reset behind bytes held for a slow client still reaches it as a reset', async () => {
      const sent: Buffer[] = [];
      const backend = await startTcpBackend((socket) => {
        const bytes = randomBytes(4 * 1024 * 1024);
        sent.push(bytes);
        // The callback runs once the kernel has taken every byte.
        socket.write(bytes, () => socket.resetAndDestroy());
      });
      const address = await startRun(backend.address, plane);
      const results: { outcome: StreamOutcome; sent: Buffer }[] = [];
      for (let i = 0; i < 5; i++) {
        const socket = halfOpenClient(address);
        socket.pause();
        const outcome = streamOutcome(socket);
        setTimeout(() => socket.resume(), 100);
        results.push({ outcome: await outcome, sent: sent[i] as Buffer });
      }
      const { verified, lost } = tally(results);
      const summary = reportScenario({ scenario: `resets slow-client (${plane.name})`, connections: results.length, bytesVerified: verified, lost, extra: 'a reset behind 4 MiB held for a client reading late, each seen as ECONNRESET' });
      for (const { outcome } of results) expect(outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
      expect(summary.lost).toBe(0);
    });

    it('socat SIGKILLed with SO_LINGER 0 mid-stream: the client sees ECONNRESET, not a FIN', async () => {
      // One connection, echoed; linger=0: its close (at the kill) is a reset.
      const { socat, address: echo } = await startSocatServer('linger=0', 'PIPE');
      const address = await startRun(echo, plane);
      const socket = halfOpenClient(address);
      let echoed = 0;
      const outcome = streamOutcome(socket, undefined, (chunk) => (echoed += chunk.length));
      const chunk = randomBytes(16 * 1024);
      const pump = setInterval(() => socket.writable && socket.write(chunk), 5);
      onTestFinished(() => clearInterval(pump));
      await waitFor(() => echoed >= 256 * 1024 || socket.closed, { what: 'bytes echoed by socat' });
      await socat.kill('SIGKILL');
      const result = await outcome;
      clearInterval(pump);
      // The client wrote `chunk` over and over: what came back must be that stream's prefix.
      const stream = Buffer.concat(Array.from({ length: Math.ceil(result.bytes / chunk.length) }, () => chunk));
      const { verified, lost } = tally([{ outcome: result, sent: stream }]);
      const summary = reportScenario({ scenario: `resets socat-killed (${plane.name})`, connections: 1, bytesVerified: verified, lost, extra: `socat SIGKILLed after ${echoed} bytes echoed, the client saw ${result.error ?? (result.ended ? 'a FIN' : 'a close')}` });
      expect(result).toMatchObject({ ended: false, error: 'ECONNRESET' });
      expect(summary.lost).toBe(0);
    });

    it('a client that resets mid-stream resets the backend connection', async () => {
      const seen: Promise<StreamOutcome>[] = [];
      const backend = await startTcpBackend((socket) => seen.push(streamOutcome(socket)));
      const address = await startRun(backend.address, plane);
      const results: { outcome: StreamOutcome; sent: Buffer }[] = [];
      for (let i = 0; i < 10; i++) {
        const socket = halfOpenClient(address);
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        const sent = randomBytes(64 * 1024);
        socket.write(sent);
        await waitFor(() => seen.length === i + 1, { what: 'the backend connection' });
        socket.resetAndDestroy();
        results.push({ outcome: await (seen[i] as Promise<StreamOutcome>), sent });
      }
      const { verified, lost } = tally(results);
      const summary = reportScenario({ scenario: `resets client-reset (${plane.name})`, connections: results.length, bytesVerified: verified, lost, extra: 'clients reset after writing 64 KiB, each backend connection seen ending in ECONNRESET' });
      for (const { outcome } of results) expect(outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
      expect(summary.lost).toBe(0);
    });
  });
});
