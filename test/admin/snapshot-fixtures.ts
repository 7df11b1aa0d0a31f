import type { AdminSnapshot, BackendSnapshot, MappingSnapshot } from '../../src/admin/admin-source.js';

/** A backend of a snapshot, with counters as given. */
export function backendSnapshot(address: string, fields: Partial<BackendSnapshot> = {}): BackendSnapshot {
  return {
    address,
    target: `${address.split(':')[0] ?? ''}`,
    priority: 10,
    weight: 100,
    failures: 0,
    ejections: 0,
    connections: 0,
    active: 0,
    connectFailures: 0,
    bytesIn: 0,
    bytesOut: 0,
    ...fields,
  };
}

/** A mapping of a snapshot with `backends`, usable, counters as given. */
export function mappingSnapshot(srvName: string, backends: BackendSnapshot[], fields: Partial<MappingSnapshot> = {}): MappingSnapshot {
  return {
    srvName,
    service: srvName.split('.')[0]?.replace(/^_/, '') ?? 'svc',
    address: '127.0.0.1:2181',
    bound: true,
    discovery: 'dns',
    set: { status: 'found', usable: true, stale: false, updatedAt: new Date(0).toISOString(), age: 1.5, refreshes: 3, refreshFailures: 1 },
    connections: {
      accepted: 0,
      active: 0,
      rejected: 0,
      forwarded: 0,
      failed: 0,
      discoveryErrors: 0,
      noBackend: 0,
      deadlineCloses: 0,
      connectFailures: 0,
      failovers: 0,
      ejections: 0,
      probeSuccesses: 0,
      probeFailures: 0,
      idleTimeouts: 0,
      bytesIn: 0,
      bytesOut: 0,
    },
    backends,
    ...fields,
  };
}

/** A snapshot with every part present (stub, zone, a registration, a child), so that every metric has a sample. */
export function fullSnapshot(mappings: MappingSnapshot[]): AdminSnapshot {
  return {
    command: 'run',
    pid: 42,
    uptime: 12,
    mappings,
    dnsListeners: [{ name: 'stub', address: '127.0.0.1:53', bound: true, queries: 9, formerr: 1, dropped: 2, badFrames: 1, servfail: 0, truncated: 0 }],
    stub: {
      address: '127.0.0.1:53',
      answering: true,
      cacheEntries: 4,
      cacheHits: 3,
      cacheMisses: 1,
      hitRate: 0.75,
      staleServed: 0,
      coalesced: 0,
      aliasAnswers: 2,
      upstreamFailures: 0,
      refused: 0,
      shed: 0,
      upstreams: [],
    },
    zone: { prefix: '/skydns', loaded: true, connected: true, revision: 17, records: 5, malformed: 1 },
    registrations: [{ key: '/skydns/local/skydns/env1/_tcp/_web/w1', state: 'registered', lease: '7', renewals: 4 }],
    child: { command: ['java', '-jar', 'app.jar'], state: 'running', pid: 43, uptime: 10 },
  };
}
