import { once } from 'node:events';
import { Etcd3, type Lease } from 'etcd3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { answerZoneQuery } from '../../src/skydns/answer-zone-query.js';
import { EtcdZoneStore, type EtcdZoneClient, type EtcdZoneResync, type EtcdZoneStoreOptions } from '../../src/skydns/etcd-zone-store.js';
import { LeaseTracker } from '../../src/skydns/lease-tracker.js';
import type { ZoneStore } from '../../src/skydns/zone-store.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { WAIT_TIMEOUT, waitFor } from '../helpers/wait-for.js';
import { formatRecord } from './format-record.js';

const ZK = '/skydns/local/skydns/env1/_tcp/_zookeeper';
const SRV_NAME = '_zookeeper._tcp.env1.skydns.local';
/** etcd restarts and elections, plus the client's circuit breaker (5 s half-open), take a while on a busy machine. */
const RECOVERY_TIMEOUT = 30_000;

/** A client for `endpoints`, closed when the test ends (before the cluster: hooks run in reverse). */
function client(endpoints: string[]): Etcd3 {
  const etcd = new Etcd3({ hosts: endpoints, dialTimeout: 3000 });
  onTestFinished(() => etcd.close());
  return etcd;
}

/** A started store, closed when the test ends; `lines` collects what it logged. */
async function startStore(options: EtcdZoneStoreOptions, setup?: (store: EtcdZoneStore) => void): Promise<{ store: EtcdZoneStore; lines: Record<string, unknown>[] }> {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  const store = new EtcdZoneStore({ logger, retryMaxMs: 1000, ...options });
  onTestFinished(() => store.close());
  setup?.(store);
  await store.start();
  return { store, lines };
}

/** A lease of `ttl` seconds, revoked when the test ends (before the client is closed). */
async function lease(etcd: Etcd3, ttl: number, options: { autoKeepAlive?: boolean } = {}): Promise<{ lease: Lease; id: string }> {
  const granted = etcd.lease(ttl, options);
  onTestFinished(async () => {
    if (!granted.revoked()) await granted.revoke().catch(() => undefined);
  });
  return { lease: granted, id: await granted.grant() };
}

async function etcdctl(cluster: EtcdCluster, ...args: string[]): Promise<string> {
  const result = await cluster.etcdctl(args);
  if (result.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/**
 * Resolves once `condition` holds: at once, or after one of the store's
 * `change` events (a watch batch or a resync); rejects after `timeout` ms.
 * The event, not a poll, ends the wait.
 */
async function until(store: EtcdZoneStore, what: string, condition: () => boolean, timeout = WAIT_TIMEOUT): Promise<void> {
  if (condition()) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      store.off('change', check);
      reject(new Error(`timed out after ${timeout} ms waiting for ${what}`));
    }, timeout);
    function check(): void {
      if (!condition()) return;
      clearTimeout(timer);
      store.off('change', check);
      resolve();
    }
    store.on('change', check);
  });
}

/** The next `event` of `store`, or a rejection after `timeout` ms. Call before causing it. */
function next<E extends 'resync' | 'disconnected'>(store: EtcdZoneStore, event: E, timeout = RECOVERY_TIMEOUT): Promise<unknown[]> {
  return once(store, event, { signal: AbortSignal.timeout(timeout) });
}

function srv(store: ZoneStore, now = Date.now()): string[] {
  return answerZoneQuery({ name: SRV_NAME, type: 'SRV' }, { zone: 'skydns.local', store, now }).answers.map(formatRecord);
}

function srvTtls(store: ZoneStore, now = Date.now()): number[] {
  return answerZoneQuery({ name: SRV_NAME, type: 'SRV' }, { zone: 'skydns.local', store, now }).answers.map((record) => record.ttl ?? -1);
}

/** Counts the range reads a store makes, around a real client (the client is an option, not a module mock). */
function countingReads(etcd: Etcd3): { client: EtcdZoneClient; reads: () => number } {
  let reads = 0;
  return {
    client: {
      getAll: () => {
        reads++;
        return etcd.getAll();
      },
      watch: () => etcd.watch(),
      leaseClient: etcd.leaseClient,
    },
    reads: () => reads,
  };
}

const ZK1 = `${SRV_NAME} 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local`;
const ZK2 = `${SRV_NAME} 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local`;
const ZK3 = `${SRV_NAME} 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local`;

describe('EtcdZoneStore', () => {
  it('loads the prefix with one range read, answers from memory, and follows puts and deletes', async () => {
    const cluster = await startEtcd();
    await etcdctl(cluster, 'put', `${ZK}/zk1`, '{"host":"10.0.0.11","port":31001}');
    await etcdctl(cluster, 'put', `${ZK}/zk2`, '{"host":"10.0.0.12","port":31002,"weight":50}');
    await etcdctl(cluster, 'put', `${ZK}/zk3`, '{"host":"10.0.0.13","port":31003,"priority":20}');
    // Beside the prefix, not under it: never read.
    await etcdctl(cluster, 'put', '/skydnsx/local/skydns/env1/_tcp/_zookeeper/zk9', '{"host":"10.0.0.19","port":31009}');
    const etcd = client(cluster.endpoints);
    const counting = countingReads(etcd);
    const { store, lines } = await startStore({ client: counting.client, prefix: '/skydns' });

    expect(srv(store)).toEqual([ZK1, ZK2, ZK3]);
    const answer = answerZoneQuery({ name: SRV_NAME, type: 'SRV' }, { zone: 'skydns.local', store, now: Date.now() });
    expect(answer.additionals.map(formatRecord)).toEqual([
      'zk1._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.11',
      'zk2._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.12',
      'zk3._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.13',
    ]);
    expect(store.size).toBe(3);
    expect(store.get(`${ZK}/zk1`)?.expiresAt).toBeUndefined();
    expect(store.revision).toBe(5);
    expect(store.synced).toBe(true);
    expect(lines.find((line) => line.msg === 'etcd zone loaded')).toMatchObject({ level: 'info', records: 3, malformed: 0, revision: 5, etcdPrefix: '/skydns/' });
    await waitFor(() => store.connected, { what: 'the watch to be established' });

    // A put reaches the index through the watch (not a read of the whole prefix again), with its revision.
    const changed = once(store, 'change', { signal: AbortSignal.timeout(WAIT_TIMEOUT) });
    const put = await etcd.put(`${ZK}/zk4`).value('{"host":"10.0.0.14","port":31004,"priority":20}').exec();
    const [change] = await changed;
    expect(change).toEqual({ cause: 'watch', revision: Number(put.header.revision), keys: [`${ZK}/zk4`] });
    expect(srv(store)).toContain(`${SRV_NAME} 300 SRV 20 50 31004 zk4._zookeeper._tcp.env1.skydns.local`);

    await etcdctl(cluster, 'del', `${ZK}/zk1`);
    await until(store, 'zk1 to be deleted', () => store.get(`${ZK}/zk1`) === undefined);
    expect(srv(store)).toEqual([
      `${SRV_NAME} 300 SRV 10 100 31002 zk2._zookeeper._tcp.env1.skydns.local`,
      `${SRV_NAME} 300 SRV 20 50 31003 zk3._zookeeper._tcp.env1.skydns.local`,
      `${SRV_NAME} 300 SRV 20 50 31004 zk4._zookeeper._tcp.env1.skydns.local`,
    ]);

    // A transaction of several keys is one batch, one change event, applied as a unit.
    const batch = once(store, 'change', { signal: AbortSignal.timeout(WAIT_TIMEOUT) });
    await etcd
      .if(`${ZK}/zk2`, 'Version', '>', 0)
      .then(etcd.delete().key(`${ZK}/zk2`), etcd.delete().key(`${ZK}/zk3`), etcd.put(`${ZK}/zk5`).value('{"host":"10.0.0.15","port":31005}'))
      .commit();
    expect((await batch)[0]).toMatchObject({ cause: 'watch', keys: [`${ZK}/zk2`, `${ZK}/zk3`, `${ZK}/zk5`] });
    expect(srv(store)).toEqual([
      `${SRV_NAME} 300 SRV 20 100 31004 zk4._zookeeper._tcp.env1.skydns.local`,
      `${SRV_NAME} 300 SRV 10 100 31005 zk5._zookeeper._tcp.env1.skydns.local`,
    ]);

    // Queries never went to etcd.
    for (let i = 0; i < 100; i++) srv(store);
    expect(counting.reads()).toBe(1);
    expect(store.get('/skydnsx/local/skydns/env1/_tcp/_zookeeper/zk9')).toBeUndefined();

    await store.close();
    await store.close();
    expect(store.connected).toBe(false);
    // Closed: the index stays readable, the client stays usable.
    expect(srv(store)).toHaveLength(2);
    expect((await etcd.get(`${ZK}/zk4`).string()) ?? '').toContain('10.0.0.14');
  });

  it('skips and counts a malformed value, still serving the other records of the service', async () => {
    const cluster = await startEtcd();
    await etcdctl(cluster, 'put', `${ZK}/zk1`, '{"host":"10.0.0.11","port":31001}');
    await etcdctl(cluster, 'put', `${ZK}/zk2`, 'not json');
    await etcdctl(cluster, 'put', `${ZK}/zk3`, '{"host":"10.0.0.13","port":31003,"priority":20}');
    const { store, lines } = await startStore({ client: client(cluster.endpoints) });

    expect(store.malformed).toBe(1);
    expect(store.malformedValues().map(({ key }) => key)).toEqual([`${ZK}/zk2`]);
    expect(srv(store)).toEqual([`${SRV_NAME} 300 SRV 10 100 31001 zk1._zookeeper._tcp.env1.skydns.local`, ZK3]);
    expect(lines.filter((line) => line.msg === 'skipping malformed skydns record').map((line) => line.key)).toEqual([`${ZK}/zk2`]);
    expect(lines.find((line) => line.msg === 'etcd zone loaded')).toMatchObject({ records: 2, malformed: 1 });

    await etcdctl(cluster, 'put', `${ZK}/zk4`, '{"host":5}');
    await until(store, 'zk4 to be counted', () => store.malformed === 2);
    expect(lines.filter((line) => line.msg === 'skipping malformed skydns record').map((line) => line.key)).toEqual([`${ZK}/zk2`, `${ZK}/zk4`]);

    // Repaired: served, no longer counted.
    await etcdctl(cluster, 'put', `${ZK}/zk2`, '{"host":"10.0.0.12","port":31002,"weight":50}');
    await until(store, 'zk2 to be served', () => store.get(`${ZK}/zk2`) !== undefined);
    expect(store.malformed).toBe(1);
    expect(srv(store)).toEqual([ZK1, ZK2, ZK3]);
    await etcdctl(cluster, 'del', `${ZK}/zk4`);
    await until(store, 'zk4 to be forgotten', () => store.malformed === 0);
  });

  it('skips and counts keys and values that are not UTF-8, never decoding them into another name or value', async () => {
    const cluster = await startEtcd();
    const etcd = client(cluster.endpoints);
    const bytes = (text: string, ...raw: number[]): Buffer => Buffer.concat([Buffer.from(text), Buffer.from(raw)]);
    await etcd.put(`${ZK}/zk1`).value('{"host":"10.0.0.11","port":31001}').exec();
    // Leniently decoded, both keys would read zk\uFFFD: one name for two keys, served.
    await etcd.put(bytes(`${ZK}/zk`, 0xff)).value('{"host":"10.0.0.12","port":31002}').exec();
    await etcd.put(bytes(`${ZK}/zk`, 0xfe)).value('{"host":"10.0.0.13","port":31003}').exec();
    // A JSON text holding a byte that is not UTF-8 inside a string.
    await etcd.put(`${ZK}/zk4`).value(bytes('{"host":"10.0.0.14","port":31004,"text":"', 0xc3, 0x28, '"}'.charCodeAt(0), '"}'.charCodeAt(1))).exec();
    const { store, lines } = await startStore({ client: etcd });

    expect(srv(store)).toEqual([`${SRV_NAME} 300 SRV 10 100 31001 zk1._zookeeper._tcp.env1.skydns.local`]);
    expect(store.malformedValues().map(({ key, error }) => [key, error.message])).toEqual([
      [`${ZK}/zk4`, `cannot read skydns record at key "${ZK}/zk4": the value is not UTF-8 (JSON text must be)`],
      [`${ZK}/zk\\xfe`, `cannot read skydns record at key "${ZK}/zk\\xfe": the key is not UTF-8`],
      [`${ZK}/zk\\xff`, `cannot read skydns record at key "${ZK}/zk\\xff": the key is not UTF-8`],
    ]);
    expect(lines.find((line) => line.msg === 'etcd zone loaded')).toMatchObject({ records: 1, malformed: 3 });

    // Through the watch: counted when put, uncounted when deleted (the same bytes find the same entry).
    await etcd.put(bytes(`${ZK}/zk`, 0x80, 0x41)).value('{"host":"10.0.0.15","port":31005}').exec();
    await until(store, 'the new key to be counted', () => store.malformed === 4);
    expect(lines.filter((line) => line.msg === 'skipping malformed skydns record').at(-1)).toMatchObject({ level: 'warn', key: `${ZK}/zk\\x80A` });
    await etcd.delete().key(bytes(`${ZK}/zk`, 0xff)).exec();
    await etcd.delete().key(bytes(`${ZK}/zk`, 0x80, 0x41)).exec();
    await until(store, 'the deleted keys to be forgotten', () => store.malformed === 2);
    expect(srv(store)).toEqual([`${SRV_NAME} 300 SRV 10 100 31001 zk1._zookeeper._tcp.env1.skydns.local`]);
  });

  it('gives a leased key the lease end: answers never outlive it; a revoked lease deletes the key', async () => {
    const cluster = await startEtcd();
    const etcd = client(cluster.endpoints);
    const { lease: ten, id } = await lease(etcd, 10, { autoKeepAlive: false });
    await ten.put(`${ZK}/zk1`).value('{"host":"10.0.0.11","port":31001,"ttl":300}');
    await ten.put(`${ZK}/zk2`).value('{"host":"10.0.0.12","port":31002,"ttl":300}');
    await ten.put(`${ZK}/zk3`).value('{"host":"10.0.0.13","port":31003,"ttl":300}');
    await etcdctl(cluster, 'put', `${ZK}/zk4`, '{"host":"10.0.0.14","port":31004,"ttl":300}');
    const before = Date.now();
    const { store } = await startStore({ client: etcd });
    const after = Date.now();

    // One lookup for the lease, however many keys it holds.
    expect(store.leaseQueries).toBe(1);
    const expiresAt = store.get(`${ZK}/zk1`)?.expiresAt ?? 0;
    // etcd rounds the time left down to whole seconds: 9 or 10 of the 10 granted.
    expect(expiresAt).toBeGreaterThanOrEqual(before + 8000);
    expect(expiresAt).toBeLessThanOrEqual(after + 10_000);
    expect(store.get(`${ZK}/zk2`)?.expiresAt).toBe(expiresAt);
    expect(store.get(`${ZK}/zk4`)?.expiresAt).toBeUndefined();
    const ttls = srvTtls(store);
    expect(ttls.slice(0, 3).every((ttl) => ttl >= 8 && ttl <= 10)).toBe(true);
    expect(ttls[3]).toBe(300);
    // However many queries: no lease lookups beyond the one.
    for (let i = 0; i < 100; i++) srvTtls(store);
    expect(store.leaseQueries).toBe(1);

    // A key put later with a lease the store already knows: no new lookup.
    await ten.put(`${ZK}/zk5`).value('{"host":"10.0.0.15","port":31005}');
    await until(store, 'zk5', () => store.get(`${ZK}/zk5`) !== undefined);
    expect(store.get(`${ZK}/zk5`)?.expiresAt).toBe(expiresAt);
    expect(store.leaseQueries).toBe(1);

    // Put again without the lease: no lease end any more.
    await etcdctl(cluster, 'put', `${ZK}/zk5`, '{"host":"10.0.0.15","port":31005}');
    await until(store, 'zk5 without lease', () => store.get(`${ZK}/zk5`)?.expiresAt === undefined);

    // A new lease is looked up before its key is served: never an unbounded TTL in between.
    const { lease: five, id: fiveId } = await lease(etcd, 5, { autoKeepAlive: false });
    expect(fiveId).not.toBe(id);
    await five.put(`${ZK}/zk6`).value('{"host":"10.0.0.16","port":31006}');
    await until(store, 'zk6', () => store.get(`${ZK}/zk6`) !== undefined);
    expect(store.get(`${ZK}/zk6`)?.expiresAt ?? Infinity).toBeLessThanOrEqual(Date.now() + 5000);
    expect(store.leaseQueries).toBe(2);

    await ten.revoke();
    await until(store, 'the keys of the revoked lease to go', () => store.get(`${ZK}/zk1`) === undefined && store.get(`${ZK}/zk3`) === undefined);
    expect(srv(store).map((line) => line.split(' ')[5])).toEqual(['31004', '31005', '31006']);
  });

  it('follows a lease kept alive beyond its TTL: the answered TTL never falls to 0', { timeout: 60_000 }, async () => {
    const cluster = await startEtcd();
    const etcd = client(cluster.endpoints);
    // etcd3 sends a keepalive every TTL/3.
    const { lease: kept } = await lease(etcd, 5);
    await kept.put(`${ZK}/zk1`).value('{"host":"10.0.0.11","port":31001,"ttl":300}');
    await kept.put(`${ZK}/zk2`).value('{"host":"10.0.0.12","port":31002,"ttl":300}');
    const { store } = await startStore({ client: etcd });
    const first = store.get(`${ZK}/zk1`)?.expiresAt ?? 0;
    const version = store.version;

    // Sampled for 1.6 × the lease TTL: no event marks "still alive", only time does.
    const samples: number[] = [];
    const end = Date.now() + 8000;
    await waitFor(
      () => {
        samples.push(...srvTtls(store));
        return Date.now() > end;
      },
      { what: 'the sampling to end', timeout: 20_000, interval: 100 },
    );
    expect(samples.length).toBeGreaterThan(100);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...samples)).toBeLessThanOrEqual(5);
    expect(store.get(`${ZK}/zk1`)?.expiresAt ?? 0).toBeGreaterThan(first + 5000);
    expect(store.get(`${ZK}/zk2`)?.expiresAt).toBe(store.get(`${ZK}/zk1`)?.expiresAt);
    // A moved lease end changes answers (their TTLs): the version says so.
    expect(store.version).toBeGreaterThan(version);
    // About one lookup every TTL/2 for the one lease, whatever the number of keys or queries.
    expect(store.leaseQueries).toBeGreaterThanOrEqual(3);
    expect(store.leaseQueries).toBeLessThanOrEqual(10);
  });

  it('keeps serving while etcd is down and resyncs when it is back, without a restart of the store', async () => {
    const cluster = await startEtcd();
    await etcdctl(cluster, 'put', `${ZK}/zk1`, '{"host":"10.0.0.11","port":31001}');
    const { store, lines } = await startStore({ client: client(cluster.endpoints) });
    await waitFor(() => store.connected, { what: 'the watch to be established' });
    const member = cluster.members[0];
    if (!member) throw new Error('no member');

    const lost = next(store, 'disconnected');
    const stopping = Date.now();
    await member.stop();
    await lost;
    const lostSeen = Date.now();
    expect(store.synced).toBe(false);
    expect(store.connected).toBe(false);
    expect(store.unavailable).toMatch(/^etcd unreachable since /);
    expect(store.lastError).toBeInstanceOf(Error);
    // The last loaded index, as it was.
    expect(srv(store)).toEqual([`${SRV_NAME} 300 SRV 10 100 31001 zk1._zookeeper._tcp.env1.skydns.local`]);
    expect(lines.find((line) => line.msg === 'lost etcd, serving the last loaded records')).toMatchObject({ level: 'warn' });

    const back = next(store, 'resync');
    const restartedAt = Date.now();
    const version = store.version;
    await member.start();
    const [resync] = (await back) as [EtcdZoneResync];
    const resyncSeen = Date.now();
    expect(resync).toMatchObject({ records: 1, malformed: 0 });
    // A new index, the same records: still a new version (anything may have changed).
    expect(store.version).toBeGreaterThan(version);
    // The outage the store reports is the one the test made: from the loss (after the stop began)
    // to the resync (after the restart), so at least the time the member stayed down.
    expect(resync.outageMs).toBeGreaterThanOrEqual(restartedAt - lostSeen);
    expect(resync.outageMs).toBeLessThanOrEqual(resyncSeen - stopping);
    expect(store.synced).toBe(true);
    expect(store.unavailable).toBeUndefined();
    expect(lines.find((line) => line.msg === 'etcd zone resynced')).toMatchObject({ level: 'info', records: 1 });

    await etcdctl(cluster, 'put', `${ZK}/zk2`, '{"host":"10.0.0.12","port":31002,"weight":50}');
    await until(store, 'zk2 after the restart', () => store.get(`${ZK}/zk2`) !== undefined);
    expect(srv(store)).toEqual([
      `${SRV_NAME} 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local`,
      `${SRV_NAME} 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local`,
    ]);
    expect(store.connected).toBe(true);
  });

  it('reads everything again when its watch revision has been compacted', async () => {
    const cluster = await startEtcd();
    await etcdctl(cluster, 'put', `${ZK}/zk1`, '{"host":"10.0.0.11","port":31001}');
    const etcd = client(cluster.endpoints);
    // Between the store's first range read and its watch, more keys are written and
    // the history compacted: the watch from the read's revision + 1 finds it gone.
    let held = false;
    const behind: EtcdZoneClient = {
      getAll: () => {
        const builder = etcd.getAll();
        if (held) return builder;
        held = true;
        const exec = builder.exec.bind(builder);
        builder.exec = async () => {
          const response = await exec();
          await etcd.put(`${ZK}/zk2`).value('{"host":"10.0.0.12","port":31002,"weight":50}');
          await etcd.put(`${ZK}/zk3`).value('{"host":"10.0.0.13","port":31003,"priority":20}');
          const put = await etcd.put(`${ZK}/zk0`).value('{"host":5}').exec();
          await etcdctl(cluster, 'compact', put.header.revision);
          return response;
        };
        return builder;
      },
      watch: () => etcd.watch(),
      leaseClient: etcd.leaseClient,
    };
    let resynced: Promise<unknown[]> | undefined;
    const { store, lines } = await startStore({ client: behind }, (created) => {
      resynced = next(created, 'resync');
    });
    expect(store.revision).toBe(2);

    const [resync] = (await resynced) as [EtcdZoneResync];
    expect(resync).toMatchObject({ reason: 'watch cancelled', records: 3, malformed: 1, revision: 5 });
    expect(srv(store)).toEqual([ZK1, ZK2, ZK3]);
    expect(store.revision).toBe(5);
    expect(lines.find((line) => line.msg === 'lost etcd, serving the last loaded records')).toMatchObject({ reason: 'watch cancelled' });

    // And it watches again from there.
    await etcdctl(cluster, 'del', `${ZK}/zk0`);
    await until(store, 'zk0 to be forgotten', () => store.malformed === 0);
  });

  it('rejects start() when etcd cannot be read', async () => {
    const cluster = await startEtcd();
    const etcd = client(cluster.endpoints);
    await cluster.close();
    const store = new EtcdZoneStore({ client: etcd, requestTimeoutMs: 2000 });
    onTestFinished(() => store.close());
    await expect(store.start()).rejects.toMatchObject({ code: 'ERR_ETCD', message: expect.stringMatching(/^cannot load skydns records from etcd prefix "\/skydns\/": /) });
  });

  it('keeps following a three-member cluster while each member in turn is down', { timeout: 120_000 }, async () => {
    const cluster = await startEtcd({ size: 3 });
    await etcdctl(cluster, 'put', `${ZK}/zk0`, '{"host":"10.0.0.10","port":31000}');
    const { store } = await startStore({ client: client(cluster.endpoints) });
    await waitFor(() => store.connected, { what: 'the watch to be established' });

    // One of the three carries the store's watch: stopping each in turn covers it.
    for (const [i, member] of cluster.members.entries()) {
      await member.stop();
      const key = `${ZK}/zk${i + 1}`;
      await etcdctl(cluster, 'put', key, JSON.stringify({ host: `10.0.0.1${i + 1}`, port: 31001 + i }));
      await until(store, `${key} with ${member.name} down`, () => store.get(key) !== undefined, RECOVERY_TIMEOUT);
      await member.start();
      // Rejoined (has a leader again) before the next one goes down.
      await waitFor(
        async () => {
          const response = await fetch(`${member.endpoint}/health`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
          return response?.ok === true && ((await response.json()) as { health?: string }).health === 'true';
        },
        { what: `${member.name} to rejoin`, timeout: RECOVERY_TIMEOUT, interval: 50 },
      );
    }
    expect(store.size).toBe(4);
    expect(srv(store)).toHaveLength(4);
  });
});

describe('LeaseTracker', () => {
  it('asks once per lease, refreshes before the estimate runs low, and promises nothing it cannot vouch for', async () => {
    let now = 1_000_000;
    const asked: string[] = [];
    const left = new Map([
      ['1', 10],
      ['2', -1],
    ]);
    const refreshed: [string, number, string[]][] = [];
    const tracker = new LeaseTracker({
      now: () => now,
      query: (lease) => {
        asked.push(lease);
        const ttl = left.get(lease);
        return ttl === undefined ? Promise.reject(new Error('unavailable')) : Promise.resolve(ttl);
      },
      onRefresh: (lease, expiresAt, keys) => refreshed.push([lease, expiresAt, [...keys.keys()]]),
      minRefreshMs: 1,
      minRetryMs: 1,
    });
    onTestFinished(() => tracker.close());

    await tracker.ensure(['1', '1', '2', '3']);
    expect(asked.sort()).toEqual(['1', '2', '3']);
    expect(tracker.attach('1', '/a', 'A')).toBe(now + 10_000);
    expect(tracker.attach('1', '/b', 'B')).toBe(now + 10_000);
    // Gone, or not known: an end of now, so answers carry a TTL of 0.
    expect(tracker.attach('2', '/c', 'C')).toBe(now);
    expect(tracker.attach('3', '/d', 'D')).toBe(now);
    await tracker.ensure(['1', '2']);
    expect(tracker.queries).toBe(3);

    // Kept alive meanwhile: the refresh moves the end of every key on the lease.
    now += 4000;
    left.set('1', 10);
    left.set('3', 7);
    await waitFor(() => refreshed.some(([lease]) => lease === '3'), { what: 'lease 3 to be asked again' });
    expect(refreshed).toContainEqual(['3', now + 7000, ['/d']]);

    tracker.detach('/a');
    tracker.detach('/b');
    tracker.detach('/c');
    tracker.detach('/d');
    expect(tracker.size).toBe(0);
  });
});
