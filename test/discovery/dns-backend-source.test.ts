import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError, SrvlinkError } from '../../src/core/errors.js';
import type { HostPort } from '../../src/core/host-port.js';
import { createLogger, type Logger } from '../../src/core/logger.js';
import { DnsClient } from '../../src/dns/client.js';
import { Rcode, createReply, type DnsMessage, type DnsRecord, type RecordType } from '../../src/dns/codec.js';
import type { DnsHandler } from '../../src/dns/handler.js';
import { DnsServer } from '../../src/dns/server.js';
import type { BackendSet, BackendSource } from '../../src/discovery/backend-source.js';
import { DnsBackendSource, type DnsBackendSourceOptions } from '../../src/discovery/dns-backend-source.js';
import type { Resolver } from '../../src/discovery/lookup-srv.js';
import { startDnsmasq, type Dnsmasq, type DnsmasqOptions } from '../helpers/dnsmasq.js';
import { freeRestartPort } from '../helpers/free-port.js';

const SRV = '_svc._tcp.env1.example.';
/** How long a test waits for an event before failing: generous, machines are noisy. */
const DEADLINE = 15_000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** What the test DNS server answers; tests change it while the source runs. */
interface Zone {
  mode: 'answer' | 'servfail' | 'nxdomain' | 'nodata' | 'silent';
  /** TTL of the SRV records (and their glue), in seconds. */
  ttl: number;
  /** SRV targets as [target, port]. */
  targets: [string, number][];
  /** A records in the additional section, by owner name. */
  glue: Record<string, string>;
  /** A records answered to A queries, by owner name (targets without glue). */
  hosts: Record<string, string>;
  /** TTL of the SOA sent with negative answers (its MINIMUM is the same), in seconds. */
  negativeTtl: number;
  /** Milliseconds to wait before answering. */
  delay: number;
}

interface Query {
  name: string;
  type: RecordType;
  at: number;
}

interface Served {
  zone: Zone;
  queries: Query[];
  address: HostPort;
  /** A real DnsClient for the server: short timeout, one attempt. */
  client: DnsClient;
  /** Resolves once `count` queries of `type` have arrived. */
  waitForQueries(type: RecordType, count: number): Promise<Query[]>;
  /** Stop the server (a DNS that is down). */
  stop(): Promise<void>;
  /** Start it again on the same port. */
  restart(): Promise<void>;
}

/** A real DnsServer on 127.0.0.1, port 0, answering from `zone` (changeable at any time). */
async function serve(initial: Partial<Zone> = {}, clientTimeout = 300): Promise<Served> {
  const zone: Zone = {
    mode: 'answer',
    ttl: 60,
    targets: [['one.env1.example.', 1001]],
    glue: { 'one.env1.example.': '192.0.2.1' },
    hosts: {},
    negativeTtl: 60,
    delay: 0,
    ...initial,
  };
  const queries: Query[] = [];
  const waiters: { type: RecordType; count: number; resolve: (q: Query[]) => void }[] = [];
  // While stopping, queries are left unanswered: DnsServer must not be asked
  // to send on a UDP socket it has already closed.
  let stopping = false;
  const hang = (): Promise<DnsMessage> => new Promise<DnsMessage>(() => undefined);
  const handler: DnsHandler = {
    name: 'test-zone',
    handle: async ({ message }): Promise<DnsMessage> => {
      const q = message.questions[0];
      if (!q) return createReply(message, { rcode: Rcode.FORMERR });
      queries.push({ name: q.name, type: q.type, at: Date.now() });
      for (const waiter of [...waiters]) {
        if (queries.filter((x) => x.type === waiter.type).length >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(queries.filter((x) => x.type === waiter.type));
        }
      }
      if (zone.mode === 'silent' || stopping) return hang();
      if (zone.delay > 0) await new Promise((resolve) => setTimeout(resolve, zone.delay));
      if (stopping) return hang();
      const soa: DnsRecord = {
        name: 'env1.example',
        type: 'SOA',
        ttl: zone.negativeTtl,
        data: { mname: 'ns.env1.example', rname: 'hostmaster.env1.example', minimum: zone.negativeTtl },
      };
      if (zone.mode === 'servfail') return createReply(message, { rcode: Rcode.SERVFAIL });
      if (zone.mode === 'nxdomain') return createReply(message, { rcode: Rcode.NXDOMAIN, authorities: [soa] });
      if (q.type === 'SRV' && zone.mode === 'answer') {
        return createReply(message, {
          answers: zone.targets.map(([target, port]) => ({ name: q.name, type: 'SRV', ttl: zone.ttl, data: { priority: 10, weight: 10, port, target } })),
          additionals: Object.entries(zone.glue).map(([name, address]) => ({ name, type: 'A', ttl: zone.ttl, data: address })),
        });
      }
      const host = zone.hosts[q.name.endsWith('.') ? q.name : `${q.name}.`];
      if (q.type === 'A' && host !== undefined) return createReply(message, { answers: [{ name: q.name, type: 'A', ttl: zone.ttl, data: host }] });
      return createReply(message, { authorities: [soa] });
    },
  };
  let server = await startOnRestartPort(handler);
  const address = server.address();
  const stop = async (): Promise<void> => {
    stopping = true;
    // Replies already on their way are sent before the next turn of the event loop.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await server.close();
  };
  cleanups.push(stop);
  return {
    zone,
    queries,
    address,
    client: new DnsClient({ servers: [address], timeout: clientTimeout, attempts: 1 }),
    waitForQueries: (type, count) =>
      withDeadline(
        new Promise<Query[]>((resolve) => {
          const matching = queries.filter((x) => x.type === type);
          if (matching.length >= count) resolve(matching);
          else waiters.push({ type, count, resolve });
        }),
        `${count} ${type} queries`,
      ),
    stop,
    restart: async () => {
      stopping = false;
      server = new DnsServer({ listen: address, handlers: [handler] });
      await server.start();
    },
  };
}

/**
 * A DnsServer on a port below the ephemeral range (`freeRestartPort`):
 * `restart()` binds the same port again, and while the server is down no
 * port-0 bind or outgoing connection elsewhere can take it. A port taken
 * between the check and the bind: another one.
 */
async function startOnRestartPort(handler: DnsHandler): Promise<DnsServer> {
  for (let attempt = 1; ; attempt++) {
    const server = new DnsServer({ listen: { host: '127.0.0.1', port: await freeRestartPort() }, handlers: [handler] });
    try {
      await server.start();
      return server;
    } catch (err) {
      if (attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

/** A source closed when the test ends. */
function source(options: DnsBackendSourceOptions): DnsBackendSource {
  const created = new DnsBackendSource(options);
  cleanups.push(() => created.close());
  return created;
}

/** Reject with a useful message when `promise` takes longer than `timeout`; leaves no timer behind. */
function withDeadline<T>(promise: Promise<T>, what: string, timeout = DEADLINE): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeout} ms`)), timeout);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * The next set `source` publishes that satisfies `predicate`. Subscribes at
 * once: call it before the action that should cause the update.
 */
function nextUpdate(source: BackendSource, predicate: (set: BackendSet) => boolean = () => true, timeout = DEADLINE): Promise<BackendSet> {
  let unsubscribe = (): void => undefined;
  const update = new Promise<BackendSet>((resolve) => {
    unsubscribe = source.onUpdate((set) => {
      if (!predicate(set)) return;
      unsubscribe();
      resolve(set);
    });
  });
  return withDeadline(update, 'matching backend set update', timeout).finally(() => unsubscribe());
}

/** `current()`, checked to settle from memory: before the event loop gets to I/O (no query could have been answered). */
async function fromMemory(source: BackendSource): Promise<BackendSet> {
  let settled = false;
  const result = source.current();
  result.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise<void>((resolve) => setImmediate(resolve));
  expect(settled, 'current() settled without waiting for I/O').toBe(true);
  return result;
}

function captureLog(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: createLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

/** Counts the queries a real client sends (a pass-through, not a mock). */
function counting(resolver: Resolver): { resolver: Resolver; queries: Query[] } {
  const queries: Query[] = [];
  return {
    queries,
    resolver: {
      query: (name, type, options) => {
        queries.push({ name, type, at: Date.now() });
        return resolver.query(name, type, options);
      },
    },
  };
}

const srvCount = (queries: readonly Query[]): number => queries.filter((q) => q.type === 'SRV').length;
const ports = (set: BackendSet): number[] => set.backends.map((b) => b.port);

describe('DnsBackendSource against a DnsServer', () => {
  it('resolves SRV targets with their addresses on first use', async () => {
    const served = await serve({
      targets: [
        ['two.env1.example.', 1002],
        ['one.env1.example.', 1001],
      ],
      glue: { 'one.env1.example.': '192.0.2.1' },
      hosts: { 'two.env1.example.': '192.0.2.2' },
    });
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 10_000 });
    const first = nextUpdate(discovery);
    await discovery.start();
    const set = await discovery.current();
    expect(await first).toBe(set);
    expect(set).toMatchObject({ name: SRV, status: 'found', stale: false });
    expect(set.backends).toEqual([
      { target: 'one.env1.example.', port: 1001, priority: 10, weight: 10, addresses: ['192.0.2.1'] },
      { target: 'two.env1.example.', port: 1002, priority: 10, weight: 10, addresses: ['192.0.2.2'] },
    ]);
    expect(discovery.state()).toMatchObject({ ttl: 10_000, lastError: undefined, failures: 0 });
  });

  it('start() resolves without waiting for a DNS server that does not answer', async () => {
    const served = await serve({ mode: 'silent' }, 5_000);
    const discovery = source({ srvName: SRV, resolver: served.client });
    let started = false;
    void discovery.start().then(() => (started = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(started).toBe(true);
    await served.waitForQueries('SRV', 1);
  });

  it('lets concurrent first callers share one lookup', async () => {
    const served = await serve({ delay: 100 });
    const discovery = source({ srvName: SRV, resolver: served.client });
    const sets = await Promise.all(Array.from({ length: 10 }, () => discovery.current()));
    expect(new Set(sets).size).toBe(1);
    expect(srvCount(served.queries)).toBe(1);
  });

  it('refreshes before expiry, so current() answers from memory after the first use', async () => {
    // TTL 2 s, inside [ttlMin, ttlMax]: the refresh is due at 80 %, 1.6 s.
    const served = await serve({ ttl: 2 }, 5_000);
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 10_000 });
    const updates: BackendSet[] = [];
    discovery.onUpdate((set) => updates.push(set));
    const first = await discovery.current();
    expect(srvCount(served.queries)).toBe(1);

    // Answered from memory: no query reaches the server.
    for (let i = 0; i < 20; i++) expect(await fromMemory(discovery)).toBe(first);
    expect(srvCount(served.queries)).toBe(1);

    // The refresh query comes before the first answer expires; while it is
    // in flight (answered slowly), current() still answers from memory.
    served.zone.delay = 500;
    const [, second] = await served.waitForQueries('SRV', 2);
    expect(second?.at).toBeGreaterThanOrEqual(first.updatedAt + 1500);
    expect(second?.at).toBeLessThan(first.updatedAt + 2000);
    const during = await fromMemory(discovery);
    expect(during.updatedAt).toBe(first.updatedAt);
    expect(during.stale).toBe(false);

    const [, , third] = await served.waitForQueries('SRV', 3);
    const refreshed = await fromMemory(discovery);
    expect(refreshed.updatedAt).toBeGreaterThan(first.updatedAt);
    expect(third?.at).toBeLessThan(refreshed.updatedAt + 2000);
    expect(refreshed.backends).toBe(first.backends);
    // Identical refreshes are no updates; the first answer was the only one.
    expect(updates).toEqual([first]);
  });

  it('picks up a change at the next refresh, within the clamped TTL, and logs it', async () => {
    // The answer says 60 s; ttlMax 300 ms caps it.
    const served = await serve({ ttl: 60 });
    const { logger, lines } = captureLog();
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 300, logger });
    expect(ports(await discovery.current())).toEqual([1001]);
    expect(discovery.state().ttl).toBe(300);

    const changed = nextUpdate(discovery, (set) => ports(set).includes(1002));
    served.zone.targets = [
      ['one.env1.example.', 1001],
      ['two.env1.example.', 1002],
    ];
    served.zone.glue = { 'one.env1.example.': '192.0.2.1', 'two.env1.example.': '192.0.2.2' };
    const set = await changed;
    expect(ports(set)).toEqual([1001, 1002]);
    expect(await fromMemory(discovery)).toBe(set);
    const change = lines.filter((l) => l.msg === 'backend set changed').at(-1);
    expect(change).toMatchObject({ level: 'info', backends: 2, added: 1, removed: 0, changed: 0, addedBackends: ['two.env1.example 192.0.2.2:1002 p10 w10'] });
    expect(change).not.toHaveProperty('removedBackends');

    const removed = nextUpdate(discovery, (s) => !ports(s).includes(1001));
    served.zone.targets = [['two.env1.example.', 1002]];
    expect(ports(await removed)).toEqual([1002]);
    expect(lines.filter((l) => l.msg === 'backend set changed').at(-1)).toMatchObject({
      added: 0,
      removed: 1,
      removedBackends: ['one.env1.example 192.0.2.1:1001 p10 w10'],
    });
  });

  it.each(['servfail', 'silent', 'down'] as const)('keeps the last good set, stale, while the server fails (%s), and recovers', async (failure) => {
    const served = await serve({ ttl: 60 }, 200);
    const { logger, lines } = captureLog();
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 200, staleMax: 60_000, retryInterval: 50, logger });
    const good = await discovery.current();

    const stale = nextUpdate(discovery, (set) => set.stale);
    if (failure === 'down') await served.stop();
    else served.zone.mode = failure;
    const staleSet = await stale;
    expect(staleSet).toMatchObject({ status: 'found', stale: true, updatedAt: good.updatedAt });
    expect(staleSet.backends).toBe(good.backends);
    expect(await fromMemory(discovery)).toBe(staleSet);
    expect(discovery.state().lastError).toMatch(/cannot resolve "_svc\._tcp\.env1\.example\." SRV/);
    expect(lines.some((l) => l.level === 'warn' && l.msg === 'backend set is stale: refreshing fails')).toBe(true);

    const fresh = nextUpdate(discovery, (set) => !set.stale);
    if (failure === 'down') await served.restart();
    else served.zone.mode = 'answer';
    const recovered = await fresh;
    expect(recovered.backends).toEqual(good.backends);
    expect(await fromMemory(discovery)).toBe(recovered);
    expect(discovery.state()).toMatchObject({ lastError: undefined, failures: 0 });
    expect(lines.some((l) => l.level === 'info' && String(l.msg).startsWith('dns discovery recovered'))).toBe(true);
  });

  it('stops serving the stale set past --stale-max, with the reason', async () => {
    const served = await serve({ ttl: 60 });
    let skew = 0;
    const discovery = source({
      srvName: SRV,
      resolver: served.client,
      ttlMin: 100,
      ttlMax: 200,
      retryInterval: 50,
      now: () => Date.now() + skew,
    });
    await discovery.current();
    const stale = nextUpdate(discovery, (set) => set.stale);
    served.zone.mode = 'servfail';
    await stale;
    // Still served just inside the default --stale-max of 5 minutes...
    skew = 299_000;
    expect((await discovery.current()).stale).toBe(true);
    // ...and not past it.
    skew = 301_000;
    const rejection = discovery.current();
    await expect(rejection).rejects.toBeInstanceOf(SrvlinkError);
    await expect(rejection).rejects.toMatchObject({ code: 'ERR_DISCOVERY' });
    await expect(rejection).rejects.toThrow(
      /^no backends for "_svc\._tcp\.env1\.example\.": the last good answer is older than --stale-max \(5m\) and refreshing fails: cannot resolve "_svc\._tcp\.env1\.example\." SRV: .*SERVFAIL/,
    );
  });

  it.each([
    ['nxdomain', /^no backends for "_svc\._tcp\.env1\.example\.": the name does not exist \(NXDOMAIN\)$/],
    ['nodata', /^no backends for "_svc\._tcp\.env1\.example\.": the name has no SRV records$/],
  ] as const)('replaces a good set on an authoritative %s, cached for the clamped negative TTL', async (mode, message) => {
    const served = await serve({ ttl: 60, negativeTtl: 0 });
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 150, ttlMax: 300 });
    await discovery.current();

    const negative = nextUpdate(discovery, (set) => set.status === mode);
    served.zone.mode = mode;
    expect(await negative).toMatchObject({ status: mode, backends: [], stale: false });
    await expect(discovery.current()).rejects.toMatchObject({ code: 'ERR_DISCOVERY', message: expect.stringMatching(message) });
    // RFC 2308 §5: a negative TTL of 0 is clamped up to ttlMin like any other.
    expect(discovery.state().ttl).toBe(150);

    const back = nextUpdate(discovery, (set) => set.status === 'found');
    served.zone.mode = 'answer';
    expect(ports(await back)).toEqual([1001]);
  });

  it('rejects when the first resolution fails, and succeeds once a retry does', async () => {
    const served = await serve({ mode: 'servfail' });
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 300, retryInterval: 50 });
    await discovery.start();
    const first = discovery.current();
    await expect(first).rejects.toMatchObject({ code: 'ERR_DISCOVERY' });
    await expect(first).rejects.toThrow(/^no backends for "_svc\._tcp\.env1\.example\.": resolving fails: cannot resolve .*SERVFAIL/);
    // Later calls do not wait for the retries: they reject from memory.
    await expect(fromMemory(discovery)).rejects.toThrow(/resolving fails/);

    const found = nextUpdate(discovery, (set) => set.status === 'found');
    served.zone.mode = 'answer';
    const set = await found;
    expect(await fromMemory(discovery)).toBe(set);
  });

  it('leaves out targets without an address, warning once per target', async () => {
    const served = await serve({
      ttl: 60,
      targets: [
        ['one.env1.example.', 1001],
        ['none.env1.example.', 1003],
      ],
    });
    const { logger, lines } = captureLog();
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 100, logger });
    expect(ports(await discovery.current())).toEqual([1001]);
    await served.waitForQueries('SRV', 3);
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toEqual([expect.objectContaining({ msg: 'srv target has no address, left out', target: 'none.env1.example.', port: 1003 })]);
  });

  it('treats an answer where no target has an address as a failed refresh', async () => {
    const served = await serve({ ttl: 60 });
    const discovery = source({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 200, retryInterval: 50 });
    const good = await discovery.current();
    const stale = nextUpdate(discovery, (set) => set.stale);
    served.zone.glue = {};
    expect((await stale).backends).toBe(good.backends);
    expect(discovery.state().lastError).toBe('no srv target has an address: "one.env1.example."');
  });

  it('rejects for a service "decidedly not available" (SRV target ".", RFC 2782)', async () => {
    const served = await serve({ targets: [['.', 0]], glue: {} });
    const discovery = source({ srvName: SRV, resolver: served.client });
    await expect(discovery.current()).rejects.toThrow(/decidedly not available/);
  });

  it('close() clears the refresh timer and is safe twice', async () => {
    const served = await serve({ ttl: 60 });
    const before = await resources();
    const discovery = new DnsBackendSource({ srvName: SRV, resolver: served.client, ttlMin: 100, ttlMax: 60_000 });
    await discovery.current();
    expect((await resources()).Timeout ?? 0).toBeGreaterThan(before.Timeout ?? 0);
    await discovery.close();
    await discovery.close();
    expectNoMoreThan(await resources(), before);
    await expect(discovery.current()).rejects.toThrow(/discovery is closed/);
    await expect(discovery.start()).rejects.toMatchObject({ code: 'ERR_DISCOVERY' });
  });

  it('close() aborts a lookup in flight, closing its socket, and fails the waiting callers', async () => {
    const served = await serve({ mode: 'silent' }, 10_000);
    const before = await resources();
    const discovery = new DnsBackendSource({ srvName: SRV, resolver: served.client });
    const waiting = discovery.current();
    await served.waitForQueries('SRV', 1);
    const started = Date.now();
    await discovery.close();
    // Far sooner than the client's 10 s timeout.
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(waiting).rejects.toThrow(/discovery is closed/);
    expectNoMoreThan(await resources(), before);
  });

  it.each([
    [{ ttlMin: 0 }, /"ttlMin": 0, expected a number of milliseconds ≥ 1/],
    [{ ttlMin: -5 }, /"ttlMin": -5/],
    [{ ttlMax: Number.NaN }, /"ttlMax": NaN/],
    [{ ttlMax: 2 ** 31 }, /"ttlMax": 2147483648, expected .* ≤ 2147483647/],
    [{ ttlMin: 5000, ttlMax: 1000 }, /"ttlMin" \(5000 ms\) is greater than "ttlMax" \(1000 ms\)/],
    [{ ttlMin: 90_000 }, /"ttlMin" \(90000 ms\) is greater than "ttlMax" \(60000 ms\)/],
    [{ staleMax: -1 }, /"staleMax": -1, expected a number of milliseconds ≥ 0/],
    [{ staleMax: Number.POSITIVE_INFINITY }, /"staleMax": Infinity/],
    [{ retryInterval: 0 }, /"retryInterval": 0/],
    [{ srvName: '' }, /"srvName": "", expected an SRV name/],
    [{ srvName: '.' }, /"srvName": "\."/],
  ] as const)('refuses bad options %o', (bad, message) => {
    const resolver: Resolver = { query: () => Promise.reject(new Error('not used')) };
    const make = (): DnsBackendSource => new DnsBackendSource({ srvName: SRV, resolver, ...bad });
    expect(make).toThrow(InvalidArgumentError);
    expect(make).toThrow(message);
  });
});

describe('DnsBackendSource against dnsmasq', () => {
  const ZK = '_zookeeper._tcp.env1.skydns.local';
  const records = (port: number): DnsmasqOptions => ({
    srv: [{ name: ZK, target: 'zk1.env1.skydns.local', port, priority: 10, weight: 20 }],
    hosts: [{ name: 'zk1.env1.skydns.local', address: '127.0.0.5' }],
  });
  const client = (dnsmasq: Dnsmasq): DnsClient => new DnsClient({ servers: [dnsmasq.address], timeout: 300, attempts: 1 });

  it('resolves the SRV records with their glue', async () => {
    const dnsmasq = await startDnsmasq(records(2181));
    const discovery = source({ srvName: ZK, resolver: client(dnsmasq) });
    const set = await discovery.current();
    expect(set).toMatchObject({ name: `${ZK}.`, status: 'found', stale: false });
    expect(set.backends).toEqual([{ target: 'zk1.env1.skydns.local.', port: 2181, priority: 10, weight: 20, addresses: ['127.0.0.5'] }]);
  });

  it('clamps a TTL of 0 up to ttlMin', async () => {
    const dnsmasq = await startDnsmasq({ ...records(2181), ttl: 0 });
    const counted = counting(client(dnsmasq));
    const discovery = source({ srvName: ZK, resolver: counted.resolver, ttlMin: 300, ttlMax: 5_000 });
    await discovery.current();
    expect(discovery.state().ttl).toBe(300);
    await vi.waitFor(() => expect(srvCount(counted.queries)).toBeGreaterThanOrEqual(4), { timeout: DEADLINE, interval: 50 });
    const times = counted.queries.filter((q) => q.type === 'SRV').map((q) => q.at);
    // Not a busy loop: refreshes 80 % of ttlMin apart (240 ms), never sooner.
    for (let i = 1; i < times.length; i++) expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(220);
  });

  it('clamps a TTL of 3600 down to ttlMax', async () => {
    const dnsmasq = await startDnsmasq({ ...records(2181), ttl: 3600 });
    const counted = counting(client(dnsmasq));
    const discovery = source({ srvName: ZK, resolver: counted.resolver, ttlMin: 100, ttlMax: 400 });
    await discovery.current();
    expect(discovery.state().ttl).toBe(400);
    await vi.waitFor(() => expect(srvCount(counted.queries)).toBeGreaterThanOrEqual(2), { timeout: DEADLINE, interval: 50 });
  });

  it('picks up changed records after dnsmasq restarts with them', async () => {
    const dnsmasq = await startDnsmasq({ ...records(2181), ttl: 3600 });
    const discovery = source({ srvName: ZK, resolver: client(dnsmasq), ttlMin: 100, ttlMax: 300, retryInterval: 50 });
    expect(ports(await discovery.current())).toEqual([2181]);
    const changed = nextUpdate(discovery, (set) => ports(set).includes(2182));
    await dnsmasq.stop();
    await startDnsmasq({ ...records(2182), ttl: 3600, listen: dnsmasq.address });
    expect(await changed).toMatchObject({ status: 'found', stale: false, backends: [expect.objectContaining({ port: 2182 })] });
  });

  it('serves the stale set while dnsmasq is down, up to --stale-max, then recovers when it is back', async () => {
    const dnsmasq = await startDnsmasq({ ...records(2181), ttl: 60 });
    const discovery = source({ srvName: ZK, resolver: client(dnsmasq), ttlMin: 100, ttlMax: 200, staleMax: 1_000, retryInterval: 50 });
    const good = await discovery.current();

    const stale = nextUpdate(discovery, (set) => set.stale);
    await dnsmasq.stop();
    expect((await stale).backends).toEqual(good.backends);
    expect((await discovery.current()).stale).toBe(true);
    await vi.waitFor(
      async () => {
        await expect(discovery.current()).rejects.toThrow(
          /^no backends for "_zookeeper\._tcp\.env1\.skydns\.local\.": the last good answer is older than --stale-max \(1s\) and refreshing fails: cannot resolve/,
        );
      },
      { timeout: DEADLINE, interval: 50 },
    );

    const fresh = nextUpdate(discovery, (set) => !set.stale);
    await startDnsmasq({ ...records(2181), ttl: 60, listen: dnsmasq.address });
    expect((await fresh).backends).toEqual(good.backends);
    expect((await fromMemory(discovery)).stale).toBe(false);
  });

  it('replaces a good set when the name stops existing (NXDOMAIN)', async () => {
    const dnsmasq = await startDnsmasq({ ...records(2181), ttl: 60 });
    const discovery = source({ srvName: ZK, resolver: client(dnsmasq), ttlMin: 100, ttlMax: 300, retryInterval: 50 });
    expect(ports(await discovery.current())).toEqual([2181]);
    const gone = nextUpdate(discovery, (set) => set.status === 'nxdomain');
    await dnsmasq.stop();
    await startDnsmasq({ ttl: 60, listen: dnsmasq.address });
    expect(await gone).toMatchObject({ status: 'nxdomain', backends: [], stale: false });
    await expect(discovery.current()).rejects.toThrow(/the name does not exist \(NXDOMAIN\)/);
    // dnsmasq sends no SOA: negative TTL 0, clamped up to ttlMin.
    expect(discovery.state().ttl).toBe(100);
  });
});

/**
 * Active timers and handles by kind (ref'd timers only: ours are), once
 * handles closed earlier are gone.
 */
async function resources(): Promise<Record<string, number>> {
  // A closed socket's handle goes in the close-callbacks phase after the
  // first turn's check phase: the second turn sees it gone.
  for (let turn = 0; turn < 2; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** Nothing more of any kind than `before` (handles of earlier tests may still be closing then). */
function expectNoMoreThan(after: Record<string, number>, before: Record<string, number>): void {
  for (const [kind, count] of Object.entries(after)) expect(count, `active ${kind}`).toBeLessThanOrEqual(before[kind] ?? 0);
}
