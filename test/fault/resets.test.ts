/**
 * Resets through `srvlink run`, as a process: a stream that was cut reaches
 * the other side as a TCP reset (ECONNRESET), never as a FIN that reads like
 * the end of a complete stream. Peers: a raw reset from a Node socket, and
 * socat (which we did not write) SIGKILLed with SO_LINGER 0.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { freePort } from '../helpers/free-port.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { streamOutcome } from '../helpers/stream-outcome.js';
import { startTcpBackend } from '../helpers/tcp-backends.js';
import { WAIT_TIMEOUT, waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

/** `srvlink run` forwarding one port to `backend`, no DNS; resolves with its listener. */
async function startRun(backend: HostPort): Promise<HostPort> {
  const proc = spawnSrvlink([
    'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none',
    '--map', '127.0.0.1:0=svc', '--backend', `svc=${backend.host}:${backend.port}`,
  ]);
  const line = await proc.waitForLog((l) => l.msg === 'listening');
  return parseHostPort(String(line.address), 'address');
}

/** A client that keeps its side open after the peer's FIN: `streamOutcome` tells a FIN from a reset. */
function halfOpenClient(address: HostPort): Socket {
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
  onTestFinished(() => void socket.destroy());
  return socket;
}

describe('resets through srvlink run', () => {
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
    const address = await startRun(backend.address);
    const seen: string[] = [];
    for (let i = 0; i < sizes.length * 6; i++) {
      // socat, a client we did not write, says "Connection reset by peer" at -d -d; a FIN ends it quietly.
      // A reset during the connect makes socat fail: its stderr says so all the same.
      const { stderr } = await run('socat', ['-d', '-d', '-u', `TCP:${address.host}:${address.port}`, 'OPEN:/dev/null'], { timeout: WAIT_TIMEOUT }).catch(
        (err: { stderr?: string }) => ({ stderr: err.stderr ?? String(err) }),
      );
      seen.push(/reset by peer/i.test(stderr) ? 'reset' : `round ${i} (${sizes[i % sizes.length]} bytes): no reset`);
    }
    expect(seen.filter((s) => s !== 'reset')).toEqual([]);
  });

  it('a reset behind bytes held for a slow client still reaches it as a reset', async () => {
    const backend = await startTcpBackend((socket) => {
      // The callback runs once the kernel has taken every byte.
      socket.write(randomBytes(4 * 1024 * 1024), () => socket.resetAndDestroy());
    });
    const address = await startRun(backend.address);
    for (let i = 0; i < 5; i++) {
      const socket = halfOpenClient(address);
      socket.pause();
      const outcome = streamOutcome(socket);
      setTimeout(() => socket.resume(), 100);
      expect(await outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
    }
  });

  it('socat SIGKILLed with SO_LINGER 0 mid-stream: the client sees ECONNRESET, not a FIN', async () => {
    let socat: ServerProcess | undefined;
    let port = 0;
    for (let attempt = 0; !socat; attempt++) {
      port = await freePort();
      // One connection, echoed; linger=0: its close (at the kill) is a reset. -d -d logs "listening".
      const started = spawnServer('socat', ['-d', '-d', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,linger=0`, 'PIPE']);
      await waitFor(() => started.child.exitCode !== null || /listening on/.test(started.log()), { what: 'socat to listen' });
      if (started.child.exitCode === null) socat = started;
      // The free port was taken in between: another one.
      else if (attempt >= 5 || !/in use/i.test(started.log())) throw new Error(`socat did not start: ${started.log()}`);
    }
    const address = await startRun({ host: '127.0.0.1', port });
    const socket = halfOpenClient(address);
    let echoed = 0;
    const outcome = streamOutcome(socket, undefined, (chunk) => (echoed += chunk.length));
    const chunk = randomBytes(16 * 1024);
    const pump = setInterval(() => socket.writable && socket.write(chunk), 5);
    onTestFinished(() => clearInterval(pump));
    await waitFor(() => echoed >= 256 * 1024 || socket.closed, { what: 'bytes echoed by socat' });
    await (socat as ServerProcess).kill('SIGKILL');
    const result = await outcome;
    clearInterval(pump);
    expect(result).toMatchObject({ ended: false, error: 'ECONNRESET' });
  });

  it('a client that resets mid-stream resets the backend connection', async () => {
    const seen: Promise<{ ended: boolean; error?: string; bytes: number }>[] = [];
    const backend = await startTcpBackend((socket) => seen.push(streamOutcome(socket)));
    const address = await startRun(backend.address);
    for (let i = 0; i < 10; i++) {
      const socket = halfOpenClient(address);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(randomBytes(64 * 1024));
      await waitFor(() => seen.length === i + 1, { what: 'the backend connection' });
      socket.resetAndDestroy();
      const result = await (seen[i] as Promise<{ ended: boolean; error?: string }>);
      expect(result).toMatchObject({ ended: false, error: 'ECONNRESET' });
    }
  });
});
