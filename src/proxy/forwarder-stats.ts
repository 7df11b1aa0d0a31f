/** Counters of one backend (`address:port`) behind a forwarder. */
export interface BackendStats {
  /** Connections forwarded to it. */
  connections: number;
  /** Of those, still open. */
  active: number;
  /** Dials to it that failed (refused, timed out, unreachable...). */
  connectFailures: number;
  /** Times it was ejected. */
  ejections: number;
  /** Bytes from clients to it. */
  bytesIn: number;
  /** Bytes from it to clients. */
  bytesOut: number;
  /** Sum of the connect times of successful dials, ms: with `connections`, the mean dial latency. */
  dialTime: number;
}

/**
 * Counters of one forwarder, for logs, `/metrics` and tests. Counters only
 * grow, except `active` and the per-backend `active`. `backends` holds the
 * backends of the current set plus any with open connections.
 */
export interface ForwarderStats {
  /** Client connections accepted. */
  accepted: number;
  /** Client connections open now (dialing or forwarding). */
  active: number;
  /** Clients closed at once because `maxConnections` were open. */
  rejected: number;
  /** Clients connected to a backend. */
  forwarded: number;
  /** Clients closed because no backend could be used: no set (see `discoveryErrors`), an empty set, every dial failed, or the dial deadline ran out. */
  failed: number;
  /** Of `failed`: the source had no usable set (ERR_DISCOVERY). */
  discoveryErrors: number;
  /** Of `failed`: the set was usable but held no address to dial. */
  noBackend: number;
  /** Of `failed`: `dialDeadline` ran out before a backend answered (backends left untried, or a dial cut short). */
  deadlineCloses: number;
  /** Dials that failed with another backend left to try (the next one was dialed). */
  failovers: number;
  /** Backends ejected (each ejection once). */
  ejections: number;
  /** Half-open trials (one connection dialing a backend whose ejection ran out) that connected: the backend is back. */
  probeSuccesses: number;
  /** Half-open trials that failed: the backend is ejected again, for twice as long. */
  probeFailures: number;
  /** Dials that failed, over all backends. */
  connectFailures: number;
  /** Forwarded connections closed by the idle timeout. */
  idleTimeouts: number;
  /** Bytes from clients to backends. */
  bytesIn: number;
  /** Bytes from backends to clients. */
  bytesOut: number;
  /** Per backend, keyed `address:port` (`[v6]:port`). */
  backends: Map<string, BackendStats>;
}

/** Fresh zeroed counters. */
export function createForwarderStats(): ForwarderStats {
  return {
    accepted: 0,
    active: 0,
    rejected: 0,
    forwarded: 0,
    failed: 0,
    discoveryErrors: 0,
    noBackend: 0,
    deadlineCloses: 0,
    failovers: 0,
    ejections: 0,
    probeSuccesses: 0,
    probeFailures: 0,
    connectFailures: 0,
    idleTimeouts: 0,
    bytesIn: 0,
    bytesOut: 0,
    backends: new Map(),
  };
}
