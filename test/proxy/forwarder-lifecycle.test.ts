import { Socket, connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, SrvlinkError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { Forwarder, type ForwarderOptions } from '../../src/proxy/forwarder.js';
import { connectTcp, echoRoundTrip, readAll, startEchoBackend, waitDisconnected } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';
import { linesMatching, startForwarder, type TestForwarder } from '../helpers/start-forwarder.js';
import { DATA_PLANES } from '../helpers/data-planes.js';
import type { LogLevel } from '../../src/core/logger.js';
import { TestSource, backend } from '../helpers/test-source.js';

/** Resolves with the error code of a connect that must fail. */
function refusedCode(address: { host: string; port: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(address);
    socket.once('connect', () => {
      socket.destroy();
      reject(new Error(`connected to ${address.host}:${address.port}, expected a refusal`));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe.each(DATA_PLANES)('on the $name data plane, $accept accept', ({ plane, accept, skip }) => {
  /** A test forwarder on this plane. */
  const start = (options: Partial<ForwarderOptions> & Pick<ForwarderOptions, 'source'>, logLevel?: LogLevel): Promise<TestForwarder> =>
    startForwarder({ dataPlane: plane, accept, ...options }, logLevel);
  if (skip) it.skip(skip, () => undefined);

  describe.skipIf(skip !== undefined)('Forwarder: limits', () => {
    it('closes clients over maxConnections at once while the others keep working, and logs the flood once', async () => {
      const echo = await startEchoBackend();
      const { forwarder, address, logs } = await start({ source: new TestSource([backend('127.0.0.1', echo.address.port)]), maxConnections: 2 }, 'info');
      const a = await connectTcp(address);
      const b = await connectTcp(address);
      await echoRoundTrip(a);
      await echoRoundTrip(b);
      const third = await connectTcp(address);
      await waitDisconnected(third);
      expect(forwarder.stats.rejected).toBe(1);
      await echoRoundTrip(a, 'a still works');
      await echoRoundTrip(b, 'b still works');
      // A flood: every one closed, one log line for all of them.
      for (let i = 0; i < 20; i++) await waitDisconnected(await connectTcp(address));
      expect(forwarder.stats.rejected).toBe(21);
      expect(forwarder.stats.accepted).toBe(2);
      expect(echo.accepted).toBe(2);
      expect(linesMatching(logs, 'warn', /too many connections/)).toHaveLength(1);
      // Room again once one leaves.
      a.destroy();
      await waitFor(() => forwarder.activeConnections === 1, { what: 'a to be gone' });
      await echoRoundTrip(await connectTcp(address), 'c fits');
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: drain', () => {
    it('stops accepting at once and lets an open connection flow until it ends by itself', async () => {
      const echo = await startEchoBackend();
      const { forwarder, address, logs } = await start({ source: new TestSource([backend('127.0.0.1', echo.address.port)]), drainTimeout: 60_000 });
      const socket = await connectTcp(address);
      await echoRoundTrip(socket);
      let closed = false;
      const closing = forwarder.close().then(() => (closed = true));
      expect(await refusedCode(address)).toBe('ECONNREFUSED');
      await echoRoundTrip(socket, 'still flowing while draining');
      expect(closed).toBe(false);
      expect(forwarder.activeConnections).toBe(1);
      const rest = readAll(socket);
      socket.end('last words');
      expect((await rest).toString()).toBe('last words');
      await closing;
      expect(forwarder.activeConnections).toBe(0);
      expect(linesMatching(logs, 'info', /^draining connections$/)).toEqual([expect.objectContaining({ active: 1 })]);
      expect(linesMatching(logs, 'warn', /drain timeout/)).toEqual([]);
    });

    it('destroys what is left after drainTimeout, dials in progress included, and resolves', async () => {
      const echo = await startEchoBackend();
      const hung: Socket[] = [];
      const dial = (host: string, port: number): Socket => {
        if (host === '10.255.255.1') {
          const never = new Socket();
          hung.push(never);
          return never;
        }
        return connect({ host, port, allowHalfOpen: true });
      };
      const source = new TestSource([backend('127.0.0.1', echo.address.port)]);
      const { forwarder, address, logs } = await start({ source, dial, drainTimeout: 200, connectTimeout: 60_000 });
      const open = await connectTcp(address);
      await echoRoundTrip(open);
      // A second client stuck dialing a backend that never answers.
      source.set([backend('10.255.255.1', 80)]);
      const dialing = await connectTcp(address);
      await waitFor(() => hung.length === 1, { what: 'the dial to start' });
      const started = Date.now();
      await forwarder.close();
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      await waitDisconnected(open);
      await waitDisconnected(dialing);
      expect(hung[0]?.destroyed).toBe(true);
      // The backend side of the open pair was closed too.
      await waitFor(() => echo.sockets.size === 0, { what: 'the backend connection to close' });
      expect(forwarder.activeConnections).toBe(0);
      expect(linesMatching(logs, 'warn', /drain timeout/)).toEqual([expect.objectContaining({ active: 2 })]);
      // Aborted dials are not the backend's fault.
      expect(forwarder.stats.connectFailures).toBe(0);
    });

    it('closes at once with nothing open; close() twice is fine, also before start()', async () => {
      const { forwarder } = await start({ source: new TestSource() });
      await forwarder.close();
      await forwarder.close();
      const never = new Forwarder({ name: 'never', listen: { host: '127.0.0.1', port: 0 }, source: new TestSource() });
      await never.close();
      await never.close();
      await expect(never.start()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: start', () => {
    it('reports where it listens (port 0 picks one)', async () => {
      const { forwarder, address } = await start({ source: new TestSource() });
      expect(address.host).toBe('127.0.0.1');
      expect(address.port).toBeGreaterThan(0);
      expect(forwarder.address()).toEqual(address);
    });

    it('address() before start() throws ERR_NOT_STARTED', () => {
      const forwarder = new Forwarder({ name: 'x', listen: { host: '127.0.0.1', port: 0 }, source: new TestSource() });
      expect(() => forwarder.address()).toThrow(SrvlinkError);
      expect(() => forwarder.address()).toThrow(/forwarder "x" is not listening/);
    });

    it('rejects with the listen error when the port is taken', async () => {
      const { address } = await start({ source: new TestSource() });
      const second = new Forwarder({ name: 'second', listen: address, source: new TestSource(), logger: silentLogger });
      const failure = second.start();
      await expect(failure).rejects.toMatchObject({ code: 'ERR_LISTEN' });
      await expect(failure).rejects.toThrow(`cannot listen on "127.0.0.1:${address.port}": the port is already in use`);
      await second.close();
      await second.close();
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: options', () => {
    const base = (): ForwarderOptions => ({ name: 'zk', listen: { host: '127.0.0.1', port: 2181 }, source: new TestSource() });

    it.each<[string, Partial<Record<keyof ForwarderOptions, unknown>>, RegExp]>([
      ['an empty name', { name: '' }, /invalid forwarder name ""/],
      ['a port over 65535', { listen: { host: '127.0.0.1', port: 70000 } }, /invalid listen address "127.0.0.1:70000" for forwarder "zk"/],
      ['a fractional port', { listen: { host: '127.0.0.1', port: 1.5 } }, /invalid listen address/],
      ['no source', { source: undefined }, /invalid source for forwarder "zk"/],
      ['a zero connectTimeout', { connectTimeout: 0 }, /invalid connectTimeout "0" for forwarder "zk": expected a whole number of ms from 1/],
      ['a negative idleTimeout', { idleTimeout: -5 }, /invalid idleTimeout "-5"/],
      ['an idleTimeout too long for a timer', { idleTimeout: 2 ** 31 }, /invalid idleTimeout "2147483648"/],
      ['a zero maxConnections', { maxConnections: 0 }, /invalid maxConnections "0"/],
      ['a fractional ejectAfter', { ejectAfter: 2.5 }, /invalid ejectAfter "2.5"/],
      ['a NaN ejectBase', { ejectBase: Number.NaN }, /invalid ejectBase "NaN"/],
      ['an ejectMax under ejectBase', { ejectBase: 10_000, ejectMax: 5000 }, /invalid ejectMax "5000" .* from 10000/],
      ['a negative drainTimeout', { drainTimeout: -1 }, /invalid drainTimeout "-1"/],
      ['a string timeout', { connectTimeout: '2s' }, /invalid connectTimeout "2s"/],
      ['a dial that is not a function', { dial: 'net.connect' }, /invalid dial for forwarder "zk": expected a function/],
    ])('rejects %s with an InvalidArgumentError', (_what, override, message) => {
      const create = (): Forwarder => new Forwarder({ ...base(), ...override } as ForwarderOptions);
      expect(create).toThrow(InvalidArgumentError);
      expect(create).toThrow(message);
    });

    it('accepts a drainTimeout of 0 (destroy at once) and an undefined idleTimeout', () => {
      expect(() => new Forwarder({ ...base(), drainTimeout: 0, idleTimeout: undefined })).not.toThrow();
    });
  });
});
