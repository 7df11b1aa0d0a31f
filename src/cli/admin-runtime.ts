import { formatHostPort, type HostPort } from '../core/host-port.js';
import type { Logger } from '../core/logger.js';
import type { BackendSet, BackendSource } from '../discovery/backend-source.js';
import type { DnsBackendSourceState } from '../discovery/dns-backend-source.js';
import { DnsClient } from '../dns/client.js';
import { createMessage } from '../dns/codec.js';
import type { DnsServer } from '../dns/server.js';
import type { AdminServer } from '../admin/admin-server.js';
import type { AdminMetrics } from '../admin/admin-metrics.js';
import type { AdminSource, BackendSnapshot, DnsListenerSnapshot, MappingSnapshot, RegistrationSnapshot, StubSnapshot, ZoneSnapshot } from '../admin/admin-source.js';
import type { Forwarder } from '../proxy/forwarder.js';
import type { Registration } from '../registry/registration.js';
import type { EtcdZoneStore } from '../skydns/etcd-zone-store.js';
import type { StubServer } from '../stub/create-stub.js';

/**
 * The metrics of an admin endpoint, loaded on first use: a command without
 * an admin endpoint never pays for them (and prom-client waits for the
 * first scrape).
 */
export async function createAdminMetrics(): Promise<AdminMetrics> {
  const { AdminMetrics } = await import('../admin/admin-metrics.js');
  return new AdminMetrics();
}

/**
 * Start the admin endpoint on `listen` and log where; a taken port rejects
 * with `ERR_LISTEN` (the command exits 1).
 */
export async function startAdminServer(listen: HostPort, source: AdminSource, metrics: AdminMetrics, log: Logger): Promise<AdminServer> {
  const { AdminServer } = await import('../admin/admin-server.js');
  const server = new AdminServer({ listen, source, metrics, logger: log.child({ component: 'admin' }) });
  await server.start();
  log.info('admin endpoint listening', { address: formatHostPort(server.address()), paths: ['/metrics', '/healthz', '/readyz', '/status'] });
  return server;
}

/** What the ambassador knows of one mapping, for `mappingSnapshot`. */
export interface MappingParts {
  listen: HostPort;
  service: string;
  srvName: string;
  discovery: string;
  forwarder: Forwarder;
  source: BackendSource;
  /** The refresh counters of a DNS or etcd source; none for static sets. */
  refresh?: DnsBackendSourceState | undefined;
}

/** How long a snapshot waits for a source's first answer before saying "none yet". */
const FIRST_SET_WAIT_MS = 50;

/** One mapping's listener, set and backends, as `/status` shows them (backends in failover order). */
export async function mappingSnapshot(parts: MappingParts, now = Date.now()): Promise<MappingSnapshot> {
  const { forwarder, source } = parts;
  let address: string;
  let bound = true;
  try {
    address = formatHostPort(forwarder.address());
  } catch {
    address = formatHostPort(parts.listen);
    bound = false;
  }
  // From memory once a set is known; only a source that never answered yet makes this wait (a little).
  let timer: NodeJS.Timeout | undefined;
  const current = await Promise.race([
    source.current().then(
      (set): { set: BackendSet } => ({ set }),
      (err: unknown): { error: string } => ({ error: err instanceof Error ? err.message : String(err) }),
    ),
    new Promise<{ error: string }>((resolve) => (timer = setTimeout(() => resolve({ error: 'no answer yet' }), FIRST_SET_WAIT_MS))),
  ]);
  clearTimeout(timer);
  const state = parts.refresh;
  const set = 'set' in current ? current.set : undefined;
  const health = new Map(forwarder.health().map((entry) => [entry.key, entry]));
  const stats = forwarder.stats;
  const backends: BackendSnapshot[] = [];
  for (const backend of set?.backends ?? []) {
    for (const host of backend.addresses) {
      const key = formatHostPort({ host, port: backend.port });
      const h = health.get(key);
      const b = stats.backends.get(key);
      backends.push({
        address: key,
        target: backend.target,
        priority: backend.priority,
        weight: backend.weight,
        ejectedUntil: h && h.ejectedFor > 0 ? new Date(now + h.ejectedFor).toISOString() : undefined,
        failures: h?.failures ?? 0,
        ejections: h?.ejections ?? 0,
        connections: b?.connections ?? 0,
        active: b?.active ?? 0,
        connectFailures: b?.connectFailures ?? 0,
        bytesIn: b?.bytesIn ?? 0,
        bytesOut: b?.bytesOut ?? 0,
      });
    }
  }
  // RFC 2782 §3: lower priority first; within one, the draw favours higher weights.
  backends.sort((a, b) => a.priority - b.priority || b.weight - a.weight || a.address.localeCompare(b.address));
  return {
    srvName: parts.srvName,
    service: parts.service,
    address,
    bound,
    discovery: parts.discovery,
    set: {
      status: set?.status ?? 'none',
      usable: set !== undefined,
      stale: set?.stale ?? false,
      updatedAt: set ? new Date(set.updatedAt).toISOString() : undefined,
      age: set ? Math.max(0, (now - set.updatedAt) / 1000) : undefined,
      error: 'error' in current ? current.error : state?.lastError,
      refreshes: state?.refreshes ?? 0,
      refreshFailures: state?.refreshFailures ?? 0,
    },
    connections: {
      accepted: stats.accepted,
      active: stats.active,
      rejected: stats.rejected,
      forwarded: stats.forwarded,
      failed: stats.failed,
      discoveryErrors: stats.discoveryErrors,
      noBackend: stats.noBackend,
      deadlineCloses: stats.deadlineCloses,
      connectFailures: stats.connectFailures,
      failovers: stats.failovers,
      ejections: stats.ejections,
      probeSuccesses: stats.probeSuccesses,
      probeFailures: stats.probeFailures,
      idleTimeouts: stats.idleTimeouts,
      bytesIn: stats.bytesIn,
      bytesOut: stats.bytesOut,
    },
    backends,
  };
}

/** A DNS server's transport counters under `name` (`stub`, `dns`). */
export function dnsListenerSnapshot(name: string, server: DnsServer, configured: HostPort): DnsListenerSnapshot {
  let address = formatHostPort(configured);
  let bound = true;
  try {
    address = formatHostPort(server.address());
  } catch {
    bound = false;
  }
  const s = server.stats;
  return { name, address, bound, queries: s.queries, formerr: s.formerr, dropped: s.dropped, badFrames: s.badFrames, servfail: s.servfail, truncated: s.truncated };
}

/**
 * The stub's cache and upstreams; with `probe`, whether it answers a query
 * right now (a CH-class question, REFUSED at once by its first handler,
 * so nothing goes upstream).
 */
export async function stubSnapshot(stub: StubServer, metrics: AdminMetrics, probe: boolean): Promise<StubSnapshot> {
  let address = '';
  let answering = false;
  try {
    const bound = stub.address();
    address = formatHostPort(bound);
    answering = probe ? await answers(bound) : true;
  } catch {
    answering = false;
  }
  const s = stub.stubStats;
  const lookups = s.cacheHits + s.cacheMisses;
  return {
    address,
    answering,
    cacheEntries: stub.cache.size,
    cacheHits: s.cacheHits,
    cacheMisses: s.cacheMisses,
    hitRate: lookups === 0 ? 0 : s.cacheHits / lookups,
    staleServed: s.staleServed,
    coalesced: s.coalesced,
    aliasAnswers: s.aliasAnswers,
    upstreamFailures: s.upstreamFailures,
    refused: s.refused,
    shed: s.shed,
    upstreams: metrics.upstreams().filter((u) => u.role !== 'discovery'),
  };
}

/** Whether a DNS server at `address` answers at all (any rcode). */
async function answers(address: HostPort): Promise<boolean> {
  const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  const client = new DnsClient({ servers: [{ host, port: address.port }], timeout: 1000, attempts: 1 });
  const query = createMessage({ questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }] });
  try {
    await client.exchange(query);
    return true;
  } catch (err) {
    // A REFUSED answer is an answer.
    return (err as { code?: string }).code === 'ERR_DNS_SERVER_FAILURE';
  }
}

/** The in-memory etcd zone; not loaded while `store` is undefined. */
export function zoneSnapshot(prefix: string, store: EtcdZoneStore | undefined): ZoneSnapshot {
  return store
    ? { prefix, loaded: store.revision > 0, connected: store.connected, revision: store.revision, records: store.size, malformed: store.malformed }
    : { prefix, loaded: false, connected: false, revision: 0, records: 0, malformed: 0 };
}

/**
 * Follow a registration's events (keepalives, checks) that its state alone
 * does not tell; returns its snapshot, read at each call.
 */
export function watchRegistration(registration: Registration, now: () => number = Date.now): () => RegistrationSnapshot {
  let renewals = 0;
  let lastCheck: { at: string; passed: boolean } | undefined;
  registration.on('renewed', () => renewals++);
  registration.on('check', ({ passed }) => (lastCheck = { at: new Date(now()).toISOString(), passed }));
  return () => ({ key: registration.key, state: registration.state, lease: registration.lease, renewals, lastCheck });
}
