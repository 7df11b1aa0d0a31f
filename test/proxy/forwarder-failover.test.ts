import { connect, Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SrvlinkError } from '../../src/core/errors.js';
import type { LogLevel } from '../../src/core/logger.js';
import type { ForwarderOptions } from '../../src/proxy/forwarder.js';
import {
  connectTcp,
  echoRoundTrip,
  expectReset,
  readLine,
  startEchoBackend,
  startNamedBackend,
  unusedPort,
  waitDisconnected,
} from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';
import { linesMatching, startForwarder, type TestForwarder } from '../helpers/start-forwarder.js';
import { DATA_PLANES } from '../helpers/data-planes.js';
import { TestSource, backend } from '../helpers/test-source.js';

/** Which named backend a new connection through `address` reaches. */
async function reached(address: { host: string; port: number }): Promise<string> {
  const socket = await connectTcp(address);
  const name = await readLine(socket);
  socket.destroy();
  return name;
}

/** A dial seam that counts attempts per `host:port` and dials for real. */
function countingDial(): { dial: (host: string, port: number) => Socket; dials: Map<string, number> } {
  const dials = new Map<string, number>();
  return {
    dials,
    dial: (host, port) => {
      dials.set(`${host}:${port}`, (dials.get(`${host}:${port}`) ?? 0) + 1);
      return connect({ host, port, allowHalfOpen: true });
    },
  };
}

describe.each(DATA_PLANES)('on the $name data plane, $accept accept', ({ plane, accept, skip }) => {
  /** A test forwarder on this plane. */
  const start = (options: Partial<ForwarderOptions> & Pick<ForwarderOptions, 'source'>, logLevel?: LogLevel): Promise<TestForwarder> =>
    startForwarder({ dataPlane: plane, accept, ...options }, logLevel);
  if (skip) it.skip(skip, () => undefined);

  describe.skipIf(skip !== undefined)('Forwarder: failover', () => {
    it('dials the next address when one refuses, and no client is lost', async () => {
      const echo = await startEchoBackend();
      // 127.0.0.2 is loopback too, but nothing listens there on the echo port.
      const source = new TestSource([backend(['127.0.0.2', '127.0.0.1'], echo.address.port)]);
      const { forwarder, address } = await start({ source, ejectAfter: 1000 });
      const clients = 10;
      await Promise.all(
        Array.from({ length: clients }, async (_, i) => {
          const socket = await connectTcp(address);
          await echoRoundTrip(socket, `client ${i}`);
          socket.destroy();
        }),
      );
      await waitFor(() => forwarder.activeConnections === 0, { what: 'every connection to close' });
      expect(forwarder.stats).toMatchObject({ accepted: clients, forwarded: clients, failed: 0, connectFailures: clients });
      expect(forwarder.stats.backends.get(`127.0.0.2:${echo.address.port}`)?.connectFailures).toBe(clients);
    });

    it('respects priority: a dead priority 10 falls over to priority 20', async () => {
      const live = await startNamedBackend('p20');
      const dead = await unusedPort();
      const source = new TestSource([backend('127.0.0.1', live.address.port, { priority: 20 }), backend('127.0.0.1', dead, { priority: 10 })]);
      const { forwarder, address } = await start({ source });
      expect(await reached(address)).toBe('p20');
      expect(forwarder.stats.connectFailures).toBe(1);
    });

    it('always uses the lowest priority while it answers', async () => {
      const a = await startNamedBackend('a');
      const b = await startNamedBackend('b');
      const source = new TestSource([backend('127.0.0.1', b.address.port, { priority: 20, weight: 1000 }), backend('127.0.0.1', a.address.port, { priority: 10, weight: 1 })]);
      const { address } = await start({ source });
      for (let i = 0; i < 10; i++) expect(await reached(address)).toBe('a');
      expect(b.accepted).toBe(0);
    });

    it.each([
      // Weights 1:1 in one priority: a draw in the lower half picks the first, the upper half the second.
      [0, 'a'],
      [0.99, 'b'],
    ])('orders one priority by weight with the injected random source (draw %f → %s)', async (draw, expected) => {
      const a = await startNamedBackend('a');
      const b = await startNamedBackend('b');
      const source = new TestSource([backend('127.0.0.1', a.address.port), backend('127.0.0.1', b.address.port)]);
      const { address } = await start({ source, random: () => draw });
      expect(await reached(address)).toBe(expected);
    });

    it('gives up on a backend that does not answer within connectTimeout and dials the next', async () => {
      const live = await startNamedBackend('live');
      const hung: Socket[] = [];
      const dial = (host: string, port: number): Socket => {
        // A real socket that never connects: what a blackholed address looks like.
        if (host === '10.255.255.1') {
          const socket = new Socket();
          hung.push(socket);
          return socket;
        }
        return connect({ host, port, allowHalfOpen: true });
      };
      const source = new TestSource([backend('10.255.255.1', 80, { priority: 10 }), backend('127.0.0.1', live.address.port, { priority: 20 })]);
      const { forwarder, address, logs } = await start({ source, dial, connectTimeout: 200 });
      const started = Date.now();
      expect(await reached(address)).toBe('live');
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      expect(hung).toHaveLength(1);
      expect(hung[0]?.destroyed).toBe(true);
      expect(forwarder.stats.connectFailures).toBe(1);
      expect(linesMatching(logs, 'debug', /^cannot dial backend$/)[0]).toMatchObject({ backend: '10.255.255.1:80', error: 'cannot dial backend "10.255.255.1:80": timed out after 200 ms' });
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: nowhere to go', () => {
    it('resets the client, counts it and logs one line naming the service and every attempt when all backends are dead', async () => {
      const [p1, p2] = [await unusedPort(), await unusedPort()];
      const source = new TestSource([backend('127.0.0.1', p1, { priority: 10 }), backend('127.0.0.1', p2, { priority: 20 })]);
      const { forwarder, address, logs } = await start({ source }, 'info');
      await expectReset(address);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the connection to be finished' });
      expect(forwarder.stats).toMatchObject({ accepted: 1, forwarded: 0, failed: 1, connectFailures: 2 });
      expect(logs).toHaveLength(1);
      expect(logs[0]).toMatchObject({
        level: 'warn',
        mapping: 'test',
        msg: `cannot reach any backend of "_svc._tcp.env1.skydns.local." (tried 127.0.0.1:${p1}: ECONNREFUSED, 127.0.0.1:${p2}: ECONNREFUSED)`,
      });
    });

    it('resets the client and counts it when the source has no usable set (ERR_DISCOVERY)', async () => {
      const echo = await startEchoBackend();
      const source = new TestSource([backend('127.0.0.1', echo.address.port)]);
      source.fail();
      const { forwarder, address, logs } = await start({ source }, 'info');
      await expectReset(address);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the connection to be finished' });
      expect(forwarder.stats).toMatchObject({ accepted: 1, failed: 1, discoveryErrors: 1, connectFailures: 0 });
      expect(echo.accepted).toBe(0);
      expect(logs).toHaveLength(1);
      expect(logs[0]).toMatchObject({ level: 'warn', msg: expect.stringContaining('no usable backend set') as unknown });
    });

    it('resets the client when the set is empty (NXDOMAIN, NODATA)', async () => {
      const { forwarder, address, logs } = await start({ source: new TestSource([]) }, 'info');
      await expectReset(address);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the connection to be finished' });
      expect(forwarder.stats).toMatchObject({ failed: 1 });
      expect(logs.map((line) => line.msg)).toEqual(['no backends for "_svc._tcp.env1.skydns.local." (static)']);
    });

    it('keeps a flood of failures from flooding the log: one line per cause', async () => {
      const { forwarder, address, logs } = await start({ source: new TestSource([backend('127.0.0.1', await unusedPort())]) }, 'info');
      for (let i = 0; i < 30; i++) await expectReset(address);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'every connection to be finished' });
      expect(forwarder.stats.failed).toBe(30);
      // Once per cause, then counted.
      expect(linesMatching(logs, 'warn', /^cannot reach any backend/)).toHaveLength(1);
    });

    it('does not dial again after the client was closed by a forced drain during discovery', async () => {
      const { dial, dials } = countingDial();
      const echo = await startEchoBackend();
      const source = new TestSource([backend('127.0.0.1', echo.address.port)]);
      source.hold();
      const { forwarder, address } = await start({ source, dial, drainTimeout: 50 });
      const socket = await connectTcp(address);
      await waitFor(() => source.calls === 1, { what: 'the forwarder to ask for backends' });
      await forwarder.close();
      await waitDisconnected(socket);
      source.release();
      expect(dials.size).toBe(0);
      expect(forwarder.activeConnections).toBe(0);
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: passive health', () => {
    it('stops dialing a backend after ejectAfter failures and dials it again when the backoff has passed', async () => {
      const live = await startNamedBackend('live');
      const deadPort = await unusedPort();
      const dead = `127.0.0.1:${deadPort}`;
      const { dial, dials } = countingDial();
      const clock = { now: 0 };
      const source = new TestSource([backend('127.0.0.1', deadPort, { priority: 10 }), backend('127.0.0.1', live.address.port, { priority: 20 })]);
      const { forwarder, address, logs } = await start({ source, dial, now: () => clock.now, ejectAfter: 3, ejectBase: 1000 });

      for (let i = 1; i <= 3; i++) {
        expect(await reached(address)).toBe('live');
        expect(dials.get(dead)).toBe(i);
      }
      expect(linesMatching(logs, 'warn', /ejected/)).toHaveLength(1);
      expect(linesMatching(logs, 'warn', /ejected/)[0]).toMatchObject({ backend: dead, ejectMs: 1000, failures: 3 });
      expect(forwarder.health()).toEqual([{ key: dead, failures: 3, ejections: 1, ejectedFor: 1000, probing: false }]);

      // Ejected: not dialed at all.
      expect(await reached(address)).toBe('live');
      expect(dials.get(dead)).toBe(3);

      // Backoff over: dialed again; one more failure ejects it for twice as long.
      clock.now += 1000;
      expect(await reached(address)).toBe('live');
      expect(dials.get(dead)).toBe(4);
      expect(linesMatching(logs, 'warn', /ejected/)[1]).toMatchObject({ ejectMs: 2000, ejections: 2 });
      clock.now += 1000;
      expect(await reached(address)).toBe('live');
      expect(dials.get(dead)).toBe(4);
      clock.now += 1000;
      expect(await reached(address)).toBe('live');
      expect(dials.get(dead)).toBe(5);
    });

    it('logs the return of an ejected backend and forgets its failures', async () => {
      const a = await startNamedBackend('a');
      const b = await startNamedBackend('b');
      const deadPort = await unusedPort();
      let broken = true;
      // While `broken`, dials to backend a go to a port where nothing listens.
      const dial = (host: string, port: number): Socket =>
        connect({ host, port: broken && port === a.address.port ? deadPort : port, allowHalfOpen: true });
      const clock = { now: 0 };
      const source = new TestSource([backend('127.0.0.1', a.address.port, { priority: 10 }), backend('127.0.0.1', b.address.port, { priority: 20 })]);
      const { forwarder, address, logs } = await start({ source, dial, now: () => clock.now, ejectAfter: 1, ejectBase: 1000 });
      expect(await reached(address)).toBe('b');
      expect(forwarder.health()).toHaveLength(1);
      broken = false;
      clock.now += 1000;
      expect(await reached(address)).toBe('a');
      expect(forwarder.health()).toEqual([]);
      expect(linesMatching(logs, 'info', /is reachable again/)).toEqual([
        expect.objectContaining({ msg: `backend 127.0.0.1:${a.address.port} of "_svc._tcp.env1.skydns.local." is reachable again: its probe connected`, probe: true }),
      ]);
      expect(forwarder.stats).toMatchObject({ probeSuccesses: 1, probeFailures: 0 });
    });

    it('lets one trial connection probe a backend whose ejection ran out while the others skip it; its failure ejects it for twice as long', async () => {
      const live = await startNamedBackend('live');
      const deadPort = await unusedPort();
      const dead = `127.0.0.1:${deadPort}`;
      // Dials of the dead backend hang until released: the probe stays under way as long as the test wants.
      const hanging: Socket[] = [];
      let deadDials = 0;
      const dial = (host: string, port: number): Socket => {
        if (port !== deadPort) return connect({ host, port, allowHalfOpen: true });
        deadDials++;
        const socket = new Socket();
        hanging.push(socket);
        return socket;
      };
      const clock = { now: 0 };
      const source = new TestSource([backend('127.0.0.1', deadPort, { priority: 10 }), backend('127.0.0.1', live.address.port, { priority: 20 })]);
      const { forwarder, address, logs } = await start({ source, dial, now: () => clock.now, ejectAfter: 1, ejectBase: 1000, connectTimeout: 60_000, dialDeadline: 60_000 });
      // Eject it: the first client's dial fails.
      const first = connectTcp(address);
      await waitFor(() => hanging.length === 1, { what: 'the first dial of the dead backend' });
      hanging[0]?.destroy(new Error('ECONNREFUSED'));
      expect(await readLine(await first)).toBe('live');
      expect(forwarder.health()[0]).toMatchObject({ key: dead, ejections: 1 });

      clock.now += 1000;
      const probing = await connectTcp(address);
      await waitFor(() => hanging.length === 2, { what: 'the probe' });
      expect(forwarder.health()[0]).toMatchObject({ key: dead, probing: true });
      // While the probe hangs, eight more clients go straight to the live backend.
      const others = await Promise.all(Array.from({ length: 8 }, async () => readLine(await connectTcp(address))));
      expect(others).toEqual(Array(8).fill('live'));
      expect(deadDials).toBe(2);
      hanging[1]?.destroy(new Error('ETIMEDOUT'));
      expect(await readLine(probing)).toBe('live');
      expect(forwarder.stats).toMatchObject({ probeSuccesses: 0, probeFailures: 1, ejections: 2 });
      expect(linesMatching(logs, 'warn', /ejected/)[1]).toMatchObject({
        msg: `backend ${dead} of "_svc._tcp.env1.skydns.local." ejected for 2000 ms after its probe failed`,
        probe: true,
        ejectMs: 2000,
      });
      expect(forwarder.health()[0]).toMatchObject({ key: dead, probing: false, ejections: 2 });
    });

    it('still tries ejected backends when every backend is ejected', async () => {
      const deadPort = await unusedPort();
      const { dial, dials } = countingDial();
      const source = new TestSource([backend('127.0.0.1', deadPort)]);
      const { forwarder, address } = await start({ source, dial, ejectAfter: 1, ejectBase: 60_000 });
      for (let i = 1; i <= 3; i++) {
        await expectReset(address);
        await waitFor(() => forwarder.stats.failed === i, { what: `failure ${i}` });
        expect(dials.get(`127.0.0.1:${deadPort}`)).toBe(i);
      }
      expect(forwarder.health()[0]).toMatchObject({ ejections: 1 });
    });

    it('dials an ejected backend last when every admitted one fails: one back up while still ejected serves the client', async () => {
      const a = await startNamedBackend('a');
      const b = await startNamedBackend('b');
      const deadPort = await unusedPort();
      let aDown = true;
      // While `aDown`, dials to backend a go to a port where nothing listens.
      const dial = (host: string, port: number): Socket => connect({ host, port: aDown && port === a.address.port ? deadPort : port, allowHalfOpen: true });
      const source = new TestSource([backend('127.0.0.1', a.address.port, { priority: 10 }), backend('127.0.0.1', b.address.port, { priority: 20 })]);
      const { forwarder, address } = await start({ source, dial, ejectAfter: 1, ejectBase: 60_000 });
      // a fails and is ejected for a minute; b serves.
      expect(await reached(address)).toBe('b');
      expect(forwarder.health()).toMatchObject([{ key: `127.0.0.1:${a.address.port}`, ejections: 1 }]);
      // a is back (still ejected), b dies: the client gets a, not a reset.
      aDown = false;
      await b.close();
      expect(await reached(address)).toBe('a');
      expect(forwarder.stats).toMatchObject({ forwarded: 2, failed: 0 });
      // a's success forgets its ejection; b's failure ejects it.
      expect(forwarder.health()).toMatchObject([{ key: `127.0.0.1:${b.address.port}`, ejections: 1 }]);
      expect(await reached(address)).toBe('a');
    });

    it('forgets the health of backends that leave the set', async () => {
      const live = await startNamedBackend('live');
      const deadPort = await unusedPort();
      const source = new TestSource([backend('127.0.0.1', deadPort, { priority: 10 }), backend('127.0.0.1', live.address.port, { priority: 20 })]);
      const { forwarder, address } = await start({ source, ejectAfter: 1 });
      expect(await reached(address)).toBe('live');
      expect(forwarder.health()).toHaveLength(1);
      expect(forwarder.stats.backends.has(`127.0.0.1:${deadPort}`)).toBe(true);
      source.set([backend('127.0.0.1', live.address.port)]);
      expect(forwarder.health()).toEqual([]);
      expect(forwarder.stats.backends.has(`127.0.0.1:${deadPort}`)).toBe(false);
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: any source failure', () => {
    it('resets the client and counts it, whatever the error', async () => {
      const source = new TestSource();
      source.current = () => Promise.reject(new SrvlinkError('ERR_ETCD', 'boom'));
      const { forwarder, address } = await start({ source });
      await expectReset(address);
      await waitFor(() => forwarder.stats.failed === 1, { what: 'the failure to be counted' });
    });
  });
});
