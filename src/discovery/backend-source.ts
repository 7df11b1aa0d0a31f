import { relativeName } from '../core/dns-name.js';

/** One SRV target (or static backend) with the addresses to dial. */
export interface Backend {
  /** The SRV target host name, or the host as configured for static backends. */
  readonly target: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
  /** Addresses to dial, in order; never empty in a published set. */
  readonly addresses: readonly string[];
}

/** A backend's name as logs, status and metrics show it: the SRV target (the instance) without its trailing dot. */
export function backendName(backend: Backend): string {
  return relativeName(backend.target);
}

/** Why a set holds what it holds. */
export type BackendSetStatus =
  /** Records found (possibly none with addresses). */
  | 'found'
  /** The name does not exist (authoritative NXDOMAIN): no backends. */
  | 'nxdomain'
  /** The name exists without SRV records: no backends. */
  | 'nodata'
  /** Given in the configuration. */
  | 'static';

/** The backends of one service at one moment: immutable, replaced whole on every change. */
export interface BackendSet {
  /** The SRV name (or service name for static sets). */
  readonly name: string;
  readonly status: BackendSetStatus;
  readonly backends: readonly Backend[];
  /** When this set was last confirmed by its source (ms since the epoch). */
  readonly updatedAt: number;
  /**
   * True while the source cannot refresh and this is the last good set, kept
   * up to `--stale-max` (docs/architecture.md §4.2).
   */
  readonly stale: boolean;
}

/**
 * Where a forwarder gets the backends of its service: DNS SRV through the
 * cluster DNS, etcd (a watch), or static configuration. One per mapping.
 * `start()` begins the first resolution without waiting for it;
 * `current()` answers from memory, waiting only on the very first use.
 */
export interface BackendSource {
  start(): Promise<void>;
  /**
   * The set to use for a new connection. Resolves at once once a set is
   * known; the first call may wait for the first resolution. Rejects with a
   * `SrvlinkError` (code `ERR_DISCOVERY`) when no usable set exists: the first
   * resolution failed, or the last good set is older than `--stale-max`.
   */
  current(): Promise<BackendSet>;
  /** Stops refreshing; safe to call twice. */
  close(): Promise<void>;
  /** Called after every change of the set (new contents, or stale flag flipped). Returns an unsubscribe function. */
  onUpdate(listener: (set: BackendSet) => void): () => void;
}
