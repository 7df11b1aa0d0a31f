import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { openFileLimit } from '../../src/core/open-file-limit.js';
import { DescriptorBudget, descriptorReserve } from '../../src/proxy/descriptor-budget.js';
import { pipesFor } from '../../src/proxy/native-data-plane.js';
import { connect } from 'node:net';
import type { HostPort } from '../../src/core/host-port.js';
import { connectTcp, echoRoundTrip, startEchoBackend, waitClosed } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';
import { linesMatching, startForwarder } from '../helpers/start-forwarder.js';
import { TestSource, backend } from '../helpers/test-source.js';

/** Connect and resolve once the forwarder has closed the connection (the reset may come before the connect is reported). */
async function closedAtOnce(address: HostPort): Promise<void> {
  const socket = connect(address.port, address.host);
  socket.on('error', () => undefined);
  await waitClosed(socket);
}

describe('DescriptorBudget', () => {
  it('leaves a reserve and two descriptors per forwarded connection', () => {
    expect(new DescriptorBudget(256).capacity).toBe((256 - 64 - 32) / 2);
    expect(new DescriptorBudget(1_048_576).capacity).toBe((1_048_576 - 1024) / 2);
    expect(new DescriptorBudget(undefined).capacity).toBe(Number.POSITIVE_INFINITY);
    expect(descriptorReserve(2000)).toBe(64 + 250);
    expect(descriptorReserve(20_000)).toBe(1024);
    const budget = new DescriptorBudget(70);
    expect(budget.capacity).toBe(1);
    expect([budget.take(), budget.take()]).toEqual([true, false]);
    budget.release();
    expect(budget.take()).toBe(true);
  });

  it('reads the limit ulimit -n reports for this process', () => {
    const shell = Number(execFileSync('sh', ['-c', 'ulimit -n']).toString());
    expect(openFileLimit()).toBe(shell);
    expect(openFileLimit('/nonexistent')).toBeUndefined();
  });

  it('a forwarder past the budget closes the client at once and counts it, shared by every forwarder of the budget', async () => {
    const echo = await startEchoBackend();
    const descriptors = new DescriptorBudget(78);
    expect(descriptors.capacity).toBe(2);
    const first = await startForwarder({ source: new TestSource([backend('127.0.0.1', echo.address.port)]), descriptors }, 'info');
    const second = await startForwarder({ source: new TestSource([backend('127.0.0.1', echo.address.port)]), descriptors }, 'info');
    expect(linesMatching(first.logs, 'warn', /open-file limit allows fewer connections/)).toEqual([
      expect.objectContaining({ openFiles: 78, connections: 2, maxConnections: 1024 }),
    ]);
    const a = await connectTcp(first.address);
    await echoRoundTrip(a);
    const b = await connectTcp(second.address);
    await echoRoundTrip(b);
    // Both places taken, one per forwarder: the next client of either is closed and counted.
    await closedAtOnce(first.address);
    await closedAtOnce(second.address);
    expect([first.forwarder.stats.rejected, second.forwarder.stats.rejected]).toEqual([1, 1]);
    expect(echo.accepted).toBe(2);
    expect(linesMatching(first.logs, 'warn', /open-file limit reached/)).toEqual([expect.objectContaining({ openFiles: 78, connections: 2 })]);
    a.destroy();
    await waitFor(() => first.forwarder.activeConnections === 0 && descriptors.inUse === 1, { what: 'a to be gone' });
    await echoRoundTrip(await connectTcp(second.address), 'room again');
  });
});

describe('pipesFor', () => {
  it.each([
    [undefined, 1024],
    [256, 16],
    [1024, 16],
    [20_000, 312],
    [1_048_576, 1024],
  ])('open-file limit %s: at most %i pipes for the native plane', (limit, pipes) => {
    expect(pipesFor(limit)).toBe(pipes);
  });

  it('leaves room for about 9,000 native pairs under 20,000 open files', () => {
    const budget = new DescriptorBudget(20_000);
    budget.hold({}, 2 * pipesFor(20_000) + 2 * 2);
    expect(budget.capacityFor(2)).toBeGreaterThanOrEqual(9000);
  });
});
