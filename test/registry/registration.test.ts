import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { InvalidArgumentError, SrvlinkError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/logger.js';
import { EtcdGateway } from '../../src/registry/etcd-gateway.js';
import { parseHealthCheck } from '../../src/registry/health-check.js';
import { registrationKey } from '../../src/registry/registration-key.js';
import { recordValue } from '../../src/skydns-model/record-value.js';
import { Registration, type RegistrationEvents, type RegistrationOptions, type RegistrationState } from '../../src/registry/registration.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { freeRestartPort } from '../helpers/free-port.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Events that depend on etcd restarts and lease expiry: generous, machines are noisy. */
const EVENT_TIMEOUT = 45_000;

const KEY = registrationKey({ domain: 'env1.skydns.local', service: 'web', instance: 'web-1' });
const VALUE = recordValue({ host: '10.0.0.5', port: 31001, ttl: 2 });
const JSON_VALUE = '{"host":"10.0.0.5","port":31001,"priority":10,"weight":100,"ttl":2}';

function client(etcd: EtcdCluster): EtcdGateway {
  const c = new EtcdGateway({ endpoints: etcd.endpoints });
  onTestFinished(() => c.close());
  return c;
}

/** A registration with test-speed settings, closed when the test ends (before its client and etcd). */
function registration(options: Partial<RegistrationOptions> & Pick<RegistrationOptions, 'client'>): Registration & { states: RegistrationState[] } {
  const reg = new Registration({ key: KEY, value: VALUE, ttl: 2, retryMin: 100, retryMax: 1000, callTimeout: 2000, ...options });
  const states: RegistrationState[] = [];
  reg.on('state', (state) => states.push(state));
  onTestFinished(() => reg.close());
  return Object.assign(reg, { states });
}

/** The first argument of the next `event` (listen before causing it). */
async function next<E extends keyof RegistrationEvents>(reg: Registration, event: E, timeout = EVENT_TIMEOUT): Promise<RegistrationEvents[E][0]> {
  const args = (await once(reg, event, { signal: AbortSignal.timeout(timeout) })) as RegistrationEvents[E];
  return args[0];
}

/** Resolves after `count` more `event`s. */
function nextN(reg: Registration, event: keyof RegistrationEvents, count: number, timeout = EVENT_TIMEOUT): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const timer = setTimeout(() => {
      reg.off(event, on);
      reject(new Error(`only ${seen} of ${count} "${event}" events within ${timeout} ms`));
    }, timeout);
    const on = (): void => {
      if (++seen < count) return;
      clearTimeout(timer);
      reg.off(event, on);
      resolve();
    };
    reg.on(event, on);
  });
}

interface Stored {
  key: string;
  value: string;
  /** Decimal, as etcd's JSON gateway reports lease ids. */
  lease: string;
}

/** Every key under /skydns, read with etcdctl (a third party). */
async function stored(etcd: EtcdCluster): Promise<Stored[]> {
  const { code, stdout, stderr } = await etcd.etcdctl(['get', '--prefix', '/skydns', '-w', 'json']);
  if (code !== 0) throw new Error(`etcdctl get failed: ${stderr}`);
  // Lease ids are 64-bit: read them as text, JSON.parse would round them.
  const text = stdout.replace(/"lease":(\d+)/g, '"lease":"$1"');
  const parsed = JSON.parse(text) as { kvs?: { key: string; value: string; lease?: string }[] };
  return (parsed.kvs ?? []).map((kv) => ({
    key: Buffer.from(kv.key, 'base64').toString(),
    value: Buffer.from(kv.value, 'base64').toString(),
    lease: kv.lease ?? '0',
  }));
}

/** `etcdctl lease timetolive --keys`: granted TTL and attached keys, or undefined when the lease is gone. */
async function leaseInfo(etcd: EtcdCluster, lease: string): Promise<{ granted: number; keys: string[] } | undefined> {
  const hex = BigInt(lease).toString(16);
  const { code, stdout, stderr } = await etcd.etcdctl(['lease', 'timetolive', hex, '--keys']);
  if (code !== 0) throw new Error(`etcdctl lease timetolive failed: ${stderr}`);
  if (/already expired/.test(stdout)) return undefined;
  const match = /granted with TTL\((\d+)s\), remaining\((-?\d+)s\), attached keys\(\[(.*)\]\)/.exec(stdout);
  if (!match) throw new Error(`unexpected etcdctl output: ${stdout}`);
  return { granted: Number(match[1]), keys: (match[3] ?? '').split(' ').filter((k) => k !== '') };
}

async function revokeExternally(etcd: EtcdCluster, lease: string): Promise<void> {
  const { code, stderr } = await etcd.etcdctl(['lease', 'revoke', BigInt(lease).toString(16)]);
  if (code !== 0) throw new Error(`etcdctl lease revoke failed: ${stderr}`);
}

describe('Registration', () => {
  it('puts exactly the key and its JSON under a lease of ttl seconds', async () => {
    const etcd = await startEtcd();
    const reg = registration({ client: client(etcd) });
    const registered = next(reg, 'registered');
    expect(reg.state).toBe('idle');
    await reg.start();
    expect(reg.state).toBe('registered');
    const { key, lease } = await registered;
    expect(key).toBe('/skydns/local/skydns/env1/_tcp/_web/web-1');
    expect(lease).toBe(reg.lease);

    const kvs = await stored(etcd);
    expect(kvs).toEqual([{ key: '/skydns/local/skydns/env1/_tcp/_web/web-1', value: JSON_VALUE, lease }]);
    expect(await leaseInfo(etcd, lease)).toEqual({ granted: 2, keys: ['/skydns/local/skydns/env1/_tcp/_web/web-1'] });
    expect(reg.states).toEqual(['waiting-for-etcd', 'registered']);
    expect(reg.address()).toBe(KEY);
  });

  it('close() revokes the lease: the key is gone as soon as it resolves; safe twice', async () => {
    const etcd = await startEtcd();
    const reg = registration({ client: client(etcd), ttl: 30 });
    await reg.start();
    const lease = reg.lease as string;
    expect(await stored(etcd)).toHaveLength(1);
    const deregistered = next(reg, 'deregistered');
    await reg.close();
    expect(await stored(etcd)).toEqual([]);
    expect(await leaseInfo(etcd, lease)).toBeUndefined();
    expect(await deregistered).toEqual({ key: KEY, reason: 'closed', revoked: true });
    expect(reg.state).toBe('closed');
    expect(reg.lease).toBeUndefined();
    await reg.close();
    await expect(reg.start()).rejects.toThrow(SrvlinkError);
  });

  it('keeps the lease alive past its ttl', async () => {
    const etcd = await startEtcd();
    const reg = registration({ client: client(etcd) });
    await reg.start();
    const lease = reg.lease as string;
    // Keepalives go every ttl/3: four of them span more than the 2 s ttl.
    await nextN(reg, 'renewed', 4);
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease }]);
    expect(reg.state).toBe('registered');
  });

  it('start() resolves while etcd is down, and registers once etcd is up', async () => {
    const etcd = await startEtcd();
    const member = etcd.members[0];
    await member?.stop();
    const lines: string[] = [];
    const reg = registration({ client: client(etcd), logger: createLogger({ level: 'debug', write: (line) => void lines.push(line) }) });
    const retrying = next(reg, 'retrying');
    await reg.start();
    expect(reg.state).toBe('waiting-for-etcd');
    const retry = await retrying;
    expect(retry.attempt).toBe(1);
    expect(retry.delay).toBeGreaterThanOrEqual(50);
    expect(retry.delay).toBeLessThanOrEqual(100);
    const registered = next(reg, 'registered');
    await member?.start();
    await registered;
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease: reg.lease }]);
    // One warning for the outage (retries log at debug level), one info line once registered; both name the key.
    const logged = lines.map((line) => JSON.parse(line) as { level: string; msg: string; key?: string });
    expect(logged.filter((l) => l.level === 'warn').map((l) => [l.msg, l.key])).toEqual([['cannot register in etcd, retrying', KEY]]);
    expect(logged.filter((l) => l.msg === 'registered').map((l) => [l.level, l.key])).toEqual([['info', KEY]]);
  });

  it('comes back by itself after etcd was down longer than the lease', async () => {
    const etcd = await startEtcd();
    const member = etcd.members[0];
    const reg = registration({ client: client(etcd) });
    await reg.start();
    const oldLease = reg.lease as string;
    const lost = next(reg, 'deregistered');
    await member?.stop();
    // The client gives the lease up once it could not renew it for twice its ttl.
    expect(await lost).toEqual({ key: KEY, reason: 'lease-lost', revoked: false });
    expect(reg.state).toBe('waiting-for-etcd');
    const registered = next(reg, 'registered');
    await member?.start();
    const { lease } = await registered;
    expect(lease).not.toBe(oldLease);
    expect(reg.state).toBe('registered');
    // etcd restores the old lease with a fresh ttl on restart; once it has
    // expired, the key (now under the new lease) must still be there.
    await expect.poll(() => leaseInfo(etcd, oldLease), { timeout: EVENT_TIMEOUT, interval: 200 }).toBeUndefined();
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease }]);
  });

  it('registers again when someone else revokes its lease', async () => {
    const etcd = await startEtcd();
    const reg = registration({ client: client(etcd) });
    await reg.start();
    const oldLease = reg.lease as string;
    const lost = next(reg, 'deregistered');
    const registered = next(reg, 'registered');
    await revokeExternally(etcd, oldLease);
    expect((await lost).reason).toBe('lease-lost');
    const { lease } = await registered;
    expect(lease).not.toBe(oldLease);
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease }]);
  });

  it('in a three-member cluster, survives the loss of a member', async () => {
    const etcd = await startEtcd({ size: 3 });
    const reg = registration({ client: client(etcd) });
    await reg.start();
    const lease = reg.lease as string;
    await etcd.members[0]?.stop();
    // Renewals go on through the other members, for longer than the ttl.
    await nextN(reg, 'renewed', 4);
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease }]);
    // And a lost lease is re-granted and the key re-put through them.
    const registered = next(reg, 'registered');
    await revokeExternally(etcd, lease);
    const again = await registered;
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease: again.lease }]);
  });

  it('refuses bad settings with an InvalidArgumentError', () => {
    const c = new EtcdGateway({ endpoints: ['http://127.0.0.1:9'] });
    expect(() => new Registration({ client: c, key: '', value: {} })).toThrow(InvalidArgumentError);
    expect(() => new Registration({ client: c, key: KEY, value: {}, ttl: 0 })).toThrow('invalid ttl "0"');
    expect(() => new Registration({ client: c, key: KEY, value: {}, ttl: 1.5 })).toThrow('invalid ttl "1.5"');
    expect(() => new Registration({ client: c, key: KEY, value: {}, rise: 0 })).toThrow('invalid rise "0"');
    expect(() => new Registration({ client: c, key: KEY, value: {}, fall: -1 })).toThrow('invalid fall "-1"');
    expect(() => new Registration({ client: c, key: KEY, value: {}, interval: 0 })).toThrow('invalid check interval "0"');
    expect(() => new Registration({ client: c, key: KEY, value: {}, retryMin: 500, retryMax: 100 })).toThrow('invalid longest retry delay "100"');
  });
});

/** A TCP listener on 127.0.0.1:`port` (0: any), closed when the test ends. */
async function listen(port: number): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve());
  });
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return address.port;
}

describe('Registration with a health check', () => {
  it('tcp: registered after rise passes, removed after fall failures, back after rise passes', async () => {
    const etcd = await startEtcd();
    // Below the ephemeral range: the port is listened on again after the check failed on it.
    let server = await listen(await freeRestartPort());
    const port = portOf(server);
    const results: { passed: boolean; healthy: boolean }[] = [];
    const reg = registration({
      client: client(etcd),
      ttl: 10,
      check: parseHealthCheck(`tcp://127.0.0.1:${port}`, { timeout: 500 }),
      interval: 100,
      rise: 2,
      fall: 3,
    });
    reg.on('check', ({ passed, health }) => results.push({ passed, healthy: health.healthy }));
    const registered = next(reg, 'registered');
    let checksWhenRegistered = 0;
    reg.once('registered', () => (checksWhenRegistered = results.length));
    await reg.start();
    // One pass is not enough: rise is 2.
    expect(results).toEqual([{ passed: true, healthy: false }]);
    expect(reg.state).toBe('unhealthy');
    await registered;
    expect(checksWhenRegistered).toBe(2);
    expect(results.slice(0, 2)).toEqual([
      { passed: true, healthy: false },
      { passed: true, healthy: true },
    ]);
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease: reg.lease }]);

    const deregistered = next(reg, 'deregistered');
    const before = results.length;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await deregistered).toEqual({ key: KEY, reason: 'unhealthy', revoked: true });
    expect(reg.state).toBe('unhealthy');
    expect(await stored(etcd)).toEqual([]);
    // Exactly `fall` failures in a row turned it (a check already under way
    // when the listener closed may still have passed).
    const turned = results.findIndex((r, i) => i >= before && !r.healthy);
    expect(turned - 2).toBeGreaterThanOrEqual(before);
    expect(results.slice(turned - 2, turned + 1)).toEqual([
      { passed: false, healthy: true },
      { passed: false, healthy: true },
      { passed: false, healthy: false },
    ]);
    expect(turned - 3 < before || results[turned - 3]?.passed === true).toBe(true);

    const back = next(reg, 'registered');
    server = await listen(port);
    const { lease } = await back;
    expect(reg.state).toBe('registered');
    expect(await stored(etcd)).toEqual([{ key: KEY, value: JSON_VALUE, lease }]);
    expect(reg.states).toEqual(['unhealthy', 'waiting-for-etcd', 'registered', 'unhealthy', 'waiting-for-etcd', 'registered']);
  });

  it('exec: follows the command exit status; the last result and every change of it are kept and logged', async () => {
    const etcd = await startEtcd();
    const flag = join(tempDir(), 'ready');
    const lines: { msg: string; ok?: boolean; reason?: string; healthy?: boolean }[] = [];
    const logger = createLogger({ level: 'debug', write: (line) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const reg = registration({ client: client(etcd), check: parseHealthCheck(`exec:test -e ${flag}`), interval: 100, rise: 1, fall: 1, logger });
    expect(reg.lastCheck).toBeUndefined();
    await reg.start();
    expect(reg.state).toBe('unhealthy');
    expect(reg.lastCheck).toMatchObject({ ok: false, reason: 'exit code 1' });
    expect(Date.parse(reg.lastCheck?.at ?? '')).toBeGreaterThan(Date.now() - 60_000);
    // Several failing runs, one line: the result did not change.
    await next(reg, 'check');
    await next(reg, 'check');
    expect(lines.filter((l) => l.msg.startsWith('health check'))).toEqual([expect.objectContaining({ msg: 'health check failed', ok: false, reason: 'exit code 1', healthy: false })]);
    expect(await stored(etcd)).toEqual([]);
    const registered = next(reg, 'registered');
    writeFileSync(flag, '');
    await registered;
    expect(await stored(etcd)).toHaveLength(1);
    expect(reg.lastCheck).toMatchObject({ ok: true, reason: 'exit code 0' });
    const deregistered = next(reg, 'deregistered');
    rmSync(flag);
    await deregistered;
    expect(await stored(etcd)).toEqual([]);
    expect(lines.filter((l) => l.msg.startsWith('health check')).map((l) => [l.msg, l.reason])).toEqual([
      ['health check failed', 'exit code 1'],
      ['health check passing', 'exit code 0'],
      ['health check failing', 'exit code 1'],
    ]);
  });

  it('close() during a check ends it and leaves nothing in etcd', async () => {
    const etcd = await startEtcd();
    const reg = registration({ client: client(etcd), check: parseHealthCheck('exec:sleep 30', { timeout: 60_000 }), interval: 100 });
    const started = reg.start();
    await reg.close();
    await started;
    expect(reg.state).toBe('closed');
    expect(await stored(etcd)).toEqual([]);
  });
});
