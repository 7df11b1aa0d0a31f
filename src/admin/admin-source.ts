/**
 * What the admin endpoint reads: one snapshot of the running parts, taken
 * per request. The admin feature defines these shapes and the composition
 * root (src/cli/) adapts the forwarders, the stub, discovery, registrations
 * and the supervisor to them, so that admin imports no other feature.
 * `/status` is this snapshot as JSON; `/metrics` and `/readyz` are derived
 * from it.
 */
export interface AdminSource {
  /** The state of every part, now; `probe`: also check that the stub answers a query (readiness, status; not for scrapes). */
  snapshot(options?: { probe?: boolean }): Promise<AdminSnapshot>;
}

/** Everything `/status` shows. Times are ISO 8601 strings, durations seconds. */
export interface AdminSnapshot {
  /** The command serving: `run`, `dns` or `register`. */
  command: string;
  pid: number;
  /** Seconds since this process started. */
  uptime: number;
  mappings: MappingSnapshot[];
  /** DNS servers of this process: the stub (`run`) or the zone server (`dns`). */
  dnsListeners: DnsListenerSnapshot[];
  stub?: StubSnapshot | undefined;
  zone?: ZoneSnapshot | undefined;
  registrations: RegistrationSnapshot[];
  /** The supervised child, once one runs (`run -- CMD`). */
  child?: ChildSnapshot | undefined;
  /** The native data plane's own counters, when the mappings forward on it (`run`). */
  nativePlane?: NativePlaneSnapshot | undefined;
}

/** What the native data plane holds and did (native/src/splice-plane.h). */
export interface NativePlaneSnapshot {
  /** Pairs it moves bytes for now. */
  pairs: number;
  /** Pipes open (in use or pooled) and the most it opens; bytes of pipe buffer open. */
  pipesOpen: number;
  maxPipes: number;
  pipeBytes: number;
  /** Bytes copied through user space because no pipe was free (spliced otherwise). */
  copiedBytes: number;
}

/** One listener (`--map`) and the backends behind it. */
export interface MappingSnapshot {
  /** The SRV name the backends come from: the `mapping` label of metrics. */
  srvName: string;
  service: string;
  /** The listener's address (`127.0.0.1:2181`), or the configured one while not bound. */
  address: string;
  bound: boolean;
  /** Where backends come from: `dns`, `etcd` or `static`. */
  discovery: string;
  set: BackendSetSnapshot;
  connections: ConnectionCounters;
  /** Current backends in failover order: priority ascending, then weight descending (RFC 2782 §3 draws by weight within a priority). */
  backends: BackendSnapshot[];
}

export interface BackendSetSnapshot {
  /** `found`, `nxdomain`, `nodata`, `static`, or `none` before the first answer. */
  status: string;
  /** Whether a new connection finds a backend to dial. */
  usable: boolean;
  stale: boolean;
  /** When the set was last confirmed (ISO 8601), if ever. */
  updatedAt?: string | undefined;
  /** Seconds since then. */
  age?: number | undefined;
  /** Why there is no usable set, or why refreshing fails. */
  error?: string | undefined;
  /** Lookups finished and, of those, failed (0 for static sets). */
  refreshes: number;
  refreshFailures: number;
}

/** Counters of one mapping; `active` is a gauge, the rest only grow. */
export interface ConnectionCounters {
  accepted: number;
  active: number;
  /** Closed at once: over `--max-conns`. */
  rejected: number;
  forwarded: number;
  /** Closed without a backend: `discoveryErrors` + `noBackend` + `deadlineCloses` + every dial failed. */
  failed: number;
  discoveryErrors: number;
  noBackend: number;
  /** Closed because `--dial-deadline` ran out before a backend answered. */
  deadlineCloses: number;
  connectFailures: number;
  failovers: number;
  ejections: number;
  /** Half-open trials of a backend whose ejection ran out: connected, and failed (ejected again). */
  probeSuccesses: number;
  probeFailures: number;
  idleTimeouts: number;
  /** Bytes from clients to backends, and back. */
  bytesIn: number;
  bytesOut: number;
}

export interface BackendSnapshot {
  /** `host:port` dialed: the `backend` label of metrics. */
  address: string;
  /** The SRV target (or configured host). */
  target: string;
  priority: number;
  weight: number;
  /** Set while ejected: when the ejection ends (ISO 8601). */
  ejectedUntil?: string | undefined;
  /** Connect failures in a row, and ejections in a row. */
  failures: number;
  ejections: number;
  connections: number;
  active: number;
  connectFailures: number;
  bytesIn: number;
  bytesOut: number;
}

/** A DNS server's transport counters. */
export interface DnsListenerSnapshot {
  /** `stub` or `dns`: the `listener` label of metrics. */
  name: string;
  address: string;
  bound: boolean;
  queries: number;
  /** Answered FORMERR: undecodable after a readable header. */
  formerr: number;
  /** Dropped unanswered: no header, a response, over the in-flight limit. */
  dropped: number;
  /** TCP connections closed for a bad length prefix. */
  badFrames: number;
  servfail: number;
  truncated: number;
}

export interface StubSnapshot {
  address: string;
  /** Whether it answered a query of its own just now (readiness). */
  answering: boolean;
  cacheEntries: number;
  cacheHits: number;
  cacheMisses: number;
  /** hits / (hits + misses), 0 before any. */
  hitRate: number;
  staleServed: number;
  coalesced: number;
  aliasAnswers: number;
  upstreamFailures: number;
  refused: number;
  shed: number;
  upstreams: UpstreamSnapshot[];
}

export interface UpstreamSnapshot {
  /** `ip:port`. */
  address: string;
  /** Which client asks it: `cluster`, `upstream` or `discovery`. */
  role: string;
  /** `up` after an answer, `failing` after a failure, `unknown` before any exchange. */
  state: string;
  exchanges: number;
  failures: number;
  /** The last exchange: when (ISO 8601) and how it ended. */
  lastAt?: string | undefined;
  lastOutcome?: string | undefined;
}

export interface ZoneSnapshot {
  /** The etcd key prefix of the layout. */
  prefix: string;
  /** Whether the zone has been read from etcd. */
  loaded: boolean;
  connected: boolean;
  revision: number;
  records: number;
  /** Values skipped as malformed. */
  malformed: number;
}

export interface RegistrationSnapshot {
  key: string;
  /** `idle`, `unhealthy`, `waiting-for-etcd`, `registered` or `closed`. */
  state: string;
  /** The lease id while registered. */
  lease?: string | undefined;
  /** Keepalives etcd acknowledged. */
  renewals: number;
  /** The last health check: when (ISO 8601) and whether it passed. */
  lastCheck?: { at: string; passed: boolean } | undefined;
}

/**
 * What the supervisor reports of its child (`run -- CMD`). srvlink never
 * restarts it: when it ends, srvlink drains and exits with its status (the
 * container's restart policy decides what comes next), so there is no
 * restart count; `exited` shows during that drain.
 */
export interface ChildSnapshot {
  command: readonly string[];
  /** `starting` (listeners coming up), `running`, `stopping` (a stop signal was passed on), `exited`. */
  state: 'starting' | 'running' | 'stopping' | 'exited';
  pid: number | undefined;
  /** Seconds the child has run, so far or until it ended. */
  uptime: number;
  /** How it ended, once `exited`: its code or signal, and the status srvlink exits with. */
  exit?: { code: number | null; signal: string | null; status: number } | undefined;
}
