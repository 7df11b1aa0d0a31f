import { MAX_TIMER_MS } from '../core/duration.js';
import { setMaxListeners } from 'node:events';
import { closeSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError, SrvlinkError, errorMessage } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import type { Service } from '../core/lifecycle.js';
import { listenError } from '../core/listen-error.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { LogThrottle } from '../core/log-throttle.js';
import { backendName, type BackendSet, type BackendSource } from '../discovery/backend-source.js';
import { BackendOrder, type OrderCursor } from '../discovery/order-backends.js';
import { BackendHealth, type Admission, type BackendHealthEntry, type HealthChange } from './backend-health.js';
import { DeadlineQueue } from './deadline-queue.js';
import { DialError, dialBackend, type DialFunction, type PendingWait } from './dial-backend.js';
import { createForwarderStats, type BackendStats, type ForwarderStats } from './forwarder-stats.js';
import { DescriptorBudget, processDescriptorBudget } from './descriptor-budget.js';
import { resetSocket } from './tcp-reset.js';
import { jsDataPlane, type DataPlane, type SpliceOptions, type SpliceResult } from './data-plane.js';
import { NativeDataPlane, socketOfFd, type NativeAcceptAddon } from './native-data-plane.js';
import { NativeDialer } from './native-dial.js';

export interface ForwarderOptions {
  /** The mapping's label in logs (e.g. `127.0.0.1:2181=zookeeper`). */
  name: string;
  /** Where to listen; port 0 picks a free one (see `address()`). */
  listen: HostPort;
  /**
   * Where backends come from. Owned by the caller: the forwarder neither
   * starts nor closes it, it only calls `current()` per connection and
   * listens to `onUpdate` to forget state about departed backends.
   */
  source: BackendSource;
  /** Ms to wait for one backend to accept before trying the next. Default 2000. */
  connectTimeout?: number;
  /**
   * Ms from accept to a connected backend, whatever the number of backends
   * tried: past it the client is closed (counted in `stats.deadlineCloses`),
   * and the dial under way is cut short. Default 5000.
   */
  dialDeadline?: number;
  /** Close a forwarded pair after this many ms without a byte either way. Default: off. */
  idleTimeout?: number | undefined;
  /** Open client connections; past it new ones are closed at once. Default 1024. */
  maxConnections?: number;
  /** Consecutive connect failures that eject a backend. Default 3. */
  ejectAfter?: number;
  /** First ejection, ms; doubles with each further ejection of the same backend. Default 5000. */
  ejectBase?: number;
  /** Longest ejection, ms. Default 300000 (5 min). */
  ejectMax?: number;
  /** On `close()`, how long open connections may go on before they are destroyed, ms. Default 10000. */
  drainTimeout?: number;
  logger?: Logger;
  /** Random source for the RFC 2782 weighted order, [0, 1). Default `Math.random`. */
  random?: () => number;
  /**
   * Opens backend connections. Default `net.connect` with `allowHalfOpen`
   * (needed to propagate half-close), paused so that nothing is read
   * before the data plane takes the socket.
   */
  dial?: DialFunction;
  /** What moves the bytes of each pair once its backend is connected. Default the JS plane (`jsDataPlane`). */
  dataPlane?: DataPlane;
  /** Clock for ejection and log throttling, ms, monotonic. Default `performance.now`. */
  now?: () => number;
  /** Told of every dial and every finished connection (metrics, access log). */
  observer?: ForwarderObserver;
  /** Room for forwarded pairs under the open-file limit, shared by the forwarders of a process. Default: this process's (`processDescriptorBudget`). */
  descriptors?: DescriptorBudget;
  /**
   * Who accepts clients. `native` (the default): C, on the event loop, when
   * the data plane is the native one with its dials (no `dial` seam) and the
   * listen host is an IP literal: no JavaScript socket is made for a client.
   * Otherwise, and with `js`, a `net.Server`.
   */
  accept?: 'native' | 'js';
}

/** How a client connection ended, for the access log. */
export type ConnectionOutcome = SpliceResult['end'] | 'no-backend' | 'unreachable' | 'deadline' | 'discovery-failed' | 'aborted';

/** One finished client connection (the access log's line). */
export interface ConnectionRecord {
  /** `address:port` of the client. */
  client: string;
  /** The backend it was forwarded to, if any. */
  backend: string | undefined;
  /** Backends whose dial failed before that, in order. */
  tried: readonly string[];
  /** Bytes from the client to the backend, and back. */
  bytesIn: number;
  bytesOut: number;
  /** From accept to close, ms. */
  ms: number;
  outcome: ConnectionOutcome;
}

/** Observation points where the forwarder decides; called synchronously, a throwing observer is ignored. */
export interface ForwarderObserver {
  /** A dial ended: connected (`ok`) or failed, after `ms`. */
  dialed?(backend: string, ok: boolean, ms: number): void;
  /** A client connection is over, forwarded or not. */
  closed?(record: ConnectionRecord): void;
}

/** The defaults of the optional settings, for help texts and config. */
export const FORWARDER_DEFAULTS = {
  connectTimeout: 2000,
  dialDeadline: 5000,
  maxConnections: 1024,
  ejectAfter: 3,
  ejectBase: 5000,
  ejectMax: 300_000,
  drainTimeout: 10_000,
} as const;

/** The settings `reconfigure()` can change on a running forwarder. */
export interface ForwarderSettings {
  connectTimeout: number;
  dialDeadline: number;
  idleTimeout: number | undefined;
  maxConnections: number;
  ejectAfter: number;
  ejectBase: number;
  drainTimeout: number;
}

/** One address of one backend, in dialing order. */
interface Candidate {
  host: string;
  port: number;
  /** `address:port`: the passive-health and stats key. */
  key: string;
  /** The backend's name: the SRV target (the instance), or the host as configured. */
  target: string;
}

/** A backend of a set with its addresses as candidates: what an RFC 2782 order of the set is drawn from. */
interface PlannedBackend {
  readonly priority: number;
  readonly weight: number;
  readonly candidates: readonly Candidate[];
}

/** What a backend set needs for each connection, made once per set: candidates, and the RFC 2782 order to draw from. */
interface SetPlan {
  readonly set: BackendSet;
  readonly order: BackendOrder<PlannedBackend>;
  /** Candidates in all, duplicates counted once. */
  readonly size: number;
  /** Some address:port is listed by more than one backend: an order must skip its repeats. */
  readonly duplicates: boolean;
}

/** The rejection of a first wait for a backend set cut short (by its timeout or a forced drain). */
const WAIT_ABORTED = 'aborted';

/** At most one line per cause of closed clients per this many ms, with the count of those held back. */
const FAILURE_LOG_INTERVAL = 60_000;

/** Addresses listed in the "tried ..." log line; a huge set would otherwise make a huge line. */
const MAX_TRIED_LISTED = 10;

/**
 * The TCP forwarder of one mapping (docs/architecture.md §4.3): listens on a local
 * address and, for each client, takes the backend set from its source,
 * orders it per RFC 2782, skips ejected backends (unless all are), dials
 * candidates in turn with a connect timeout, and splices the client to the
 * first that answers. A client with nowhere to go is reset (a FIN would
 * read as an empty reply), counted and logged once. Nothing a client, a backend or the kernel does can crash it.
 */
export class Forwarder implements Service<HostPort> {
  /** Live counters; read them, do not write them. */
  readonly stats: ForwarderStats = createForwarderStats();
  readonly #name: string;
  readonly #listen: HostPort;
  readonly #source: BackendSource;
  #connectTimeout: number;
  #dialDeadline: number;
  #idleTimeout: number | undefined;
  #maxConnections: number;
  #drainTimeout: number;
  readonly #random: () => number;
  readonly #dial: DialFunction;
  readonly #log: Logger;
  readonly #health: BackendHealth;
  readonly #rejectLog: LogThrottle;
  readonly #descriptors: DescriptorBudget;
  readonly #serverErrorLog: LogThrottle;
  readonly #failureLog: LogThrottle;
  readonly #observer: ForwarderObserver;
  readonly #dataPlane: DataPlane;
  /** The native plane, when it forwards and dials too (no `dial` seam): backends are dialed in C, no JS socket made for them. */
  readonly #native: { plane: NativeDataPlane; dialer: NativeDialer } | undefined;
  /** Native dials under way, to abort on a forced drain. */
  readonly #nativeDials = new Set<number>();
  /** Every open client socket (from accept to close). */
  readonly #clients = new Set<Socket>();
  /** Accepts in C (`accept`), when this forwarder's clients are taken so. */
  readonly #acceptor: NativeAcceptAddon | undefined;
  /** The listening socket of the native accepts, while listening. */
  #listener: { id: number; address: HostPort } | undefined;
  /** Clients a native accept took and no plane holds yet (waiting for a backend set or a dial). */
  readonly #accepted = new Set<AcceptedClient>();
  /** Connections not finished yet: accepted, and not both closed and accounted for. */
  #active = 0;
  /** Every open, connected backend socket. */
  readonly #backends = new Set<Socket>();
  /** Aborted when a drain runs out of time: the data plane ends its pairs (waits and dials in progress are aborted through `#deadlines`). */
  readonly #hardStop = new AbortController();
  /** Every wait of a connection before its splice (first backend set, dials): their timeouts on one timer, aborted together by a forced drain. */
  readonly #deadlines = new DeadlineQueue<PendingWait>();
  /** The plan of the latest backend set seen (sets are immutable and replaced whole). */
  #plan: SetPlan | undefined;
  readonly #onClientError = (err: Error): void => this.#log.debug('client socket error', { error: errorMessage(err) });
  #server: Server | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;
  #onIdle: (() => void) | undefined;

  constructor(options: ForwarderOptions) {
    const name = options.name;
    if (typeof name !== 'string' || name === '') throw new InvalidArgumentError(`invalid forwarder name "${String(name)}": expected a non-empty label`);
    const check = (what: string, value: unknown, min: number, unit: string): number => checkSetting(name, what, value, min, unit);
    const listen = options.listen;
    if (typeof listen?.host !== 'string' || listen.host === '' || !Number.isInteger(listen.port) || listen.port < 0 || listen.port > 65535) {
      throw new InvalidArgumentError(`invalid listen address "${listen ? `${String(listen.host)}:${String(listen.port)}` : String(listen)}" for forwarder "${name}": expected a host and a port 0-65535`);
    }
    if (typeof options.source?.current !== 'function' || typeof options.source.onUpdate !== 'function') {
      throw new InvalidArgumentError(`invalid source for forwarder "${name}": expected a BackendSource`);
    }
    for (const seam of ['random', 'dial', 'now'] as const) {
      if (options[seam] !== undefined && typeof options[seam] !== 'function') {
        throw new InvalidArgumentError(`invalid ${seam} for forwarder "${name}": expected a function`);
      }
    }
    this.#name = name;
    this.#listen = { host: listen.host, port: listen.port };
    this.#source = options.source;
    this.#connectTimeout = check('connectTimeout', options.connectTimeout ?? FORWARDER_DEFAULTS.connectTimeout, 1, 'ms');
    this.#dialDeadline = check('dialDeadline', options.dialDeadline ?? FORWARDER_DEFAULTS.dialDeadline, 1, 'ms');
    this.#idleTimeout = options.idleTimeout === undefined ? undefined : check('idleTimeout', options.idleTimeout, 1, 'ms');
    this.#maxConnections = check('maxConnections', options.maxConnections ?? FORWARDER_DEFAULTS.maxConnections, 1, 'connections');
    this.#drainTimeout = check('drainTimeout', options.drainTimeout ?? FORWARDER_DEFAULTS.drainTimeout, 0, 'ms');
    const ejectAfter = check('ejectAfter', options.ejectAfter ?? FORWARDER_DEFAULTS.ejectAfter, 1, 'failures');
    const ejectBase = check('ejectBase', options.ejectBase ?? FORWARDER_DEFAULTS.ejectBase, 1, 'ms');
    const ejectMax = check('ejectMax', options.ejectMax ?? Math.max(FORWARDER_DEFAULTS.ejectMax, ejectBase), ejectBase, 'ms');
    this.#random = options.random ?? Math.random;
    this.#dial = options.dial ?? ((host, port) => connect({ host, port, allowHalfOpen: true, noDelay: true }).pause());
    const now = options.now ?? (() => performance.now());
    this.#log = (options.logger ?? silentLogger).child({ mapping: name });
    this.#health = new BackendHealth({ ejectAfter, ejectBase, ejectMax, now });
    // Every forwarded pair's data plane listens to this signal: up to
    // maxConnections listeners is normal, not the leak Node warns about.
    setMaxListeners(0, this.#hardStop.signal);
    this.#rejectLog = new LogThrottle({ interval: 5000, now });
    this.#serverErrorLog = new LogThrottle({ interval: 5000, now });
    // Once per cause, then counted: a dead service hit by every client is one line a minute, with the count.
    this.#failureLog = new LogThrottle({ interval: FAILURE_LOG_INTERVAL, now });
    this.#observer = options.observer ?? {};
    this.#descriptors = options.descriptors ?? processDescriptorBudget();
    this.#dataPlane = options.dataPlane ?? jsDataPlane;
    const dialer = this.#dataPlane instanceof NativeDataPlane && options.dial === undefined ? this.#dataPlane.dialer : undefined;
    this.#native = dialer && this.#dataPlane instanceof NativeDataPlane ? { plane: this.#dataPlane, dialer } : undefined;
    // A host name to listen on is resolved by net.Server: those mappings keep the JavaScript accept.
    this.#acceptor = options.accept !== 'js' && this.#native !== undefined && NativeDialer.dialable(listen.host) ? this.#native.plane.acceptor : undefined;
    this.#descriptors.hold(this.#dataPlane, this.#dataPlane.fixedDescriptors);
  }

  /**
   * Apply changed settings (a config reload) without touching open
   * connections: new connections dial with the new timeout and get the new
   * idle timeout, the connection limit and ejection thresholds apply from
   * now on, a later drain uses the new drain timeout.
   */
  reconfigure(settings: ForwarderSettings): void {
    const check = (what: string, value: unknown, min: number, unit: string): number => checkSetting(this.#name, what, value, min, unit);
    const connectTimeout = check('connectTimeout', settings.connectTimeout, 1, 'ms');
    const dialDeadline = check('dialDeadline', settings.dialDeadline, 1, 'ms');
    const idleTimeout = settings.idleTimeout === undefined ? undefined : check('idleTimeout', settings.idleTimeout, 1, 'ms');
    const maxConnections = check('maxConnections', settings.maxConnections, 1, 'connections');
    const drainTimeout = check('drainTimeout', settings.drainTimeout, 0, 'ms');
    const ejectAfter = check('ejectAfter', settings.ejectAfter, 1, 'failures');
    const ejectBase = check('ejectBase', settings.ejectBase, 1, 'ms');
    this.#health.configure({ ejectAfter, ejectBase, ejectMax: Math.max(FORWARDER_DEFAULTS.ejectMax, ejectBase) });
    this.#connectTimeout = connectTimeout;
    this.#dialDeadline = dialDeadline;
    this.#idleTimeout = idleTimeout;
    this.#maxConnections = maxConnections;
    this.#drainTimeout = drainTimeout;
    if (this.#server) this.#server.maxConnections = maxConnections;
  }

  /** Whether clients are accepted in C (`accept`): known once started. */
  get acceptsNatively(): boolean {
    return this.#listener !== undefined;
  }

  /** Listen; resolves once listening, rejects with `ERR_LISTEN` (e.g. port taken). */
  start(): Promise<void> {
    this.#starting ??= this.#doStart();
    return this.#starting;
  }

  /** The bound address (the real port when `listen.port` is 0). Throws before `start()` resolved. */
  address(): HostPort {
    if (this.#listener) return { ...this.#listener.address };
    const bound = this.#server?.address();
    if (!bound || typeof bound === 'string') throw new SrvlinkError('ERR_NOT_STARTED', `forwarder "${this.#name}" is not listening`);
    return { host: bound.address, port: bound.port };
  }

  /**
   * Connections not finished yet (waiting for backends, dialing or
   * forwarding). Drops once both sockets are closed and the stats updated,
   * so a test can wait for 0 and then read final counters.
   */
  get activeConnections(): number {
    return this.#active;
  }

  /** Backends with failures on record and how long each stays ejected. */
  health(): BackendHealthEntry[] {
    return this.#health.snapshot();
  }

  /**
   * Graceful drain: stop accepting at once, let open connections finish for
   * up to `drainTimeout` ms, then destroy what is left. Resolves when every
   * socket is closed; safe to call twice (and before `start()`).
   */
  close(): Promise<void> {
    this.#closing ??= this.#drain();
    return this.#closing;
  }

  async #doStart(): Promise<void> {
    if (this.#closing) throw new SrvlinkError('ERR_CLOSED', `forwarder "${this.#name}" is closed`);
    if (this.#acceptor) return this.#startNative(this.#acceptor);
    // allowHalfOpen: a client's FIN must not end our write side, the backend
    // may still be answering. pauseOnConnect: nothing is read before the
    // backend is connected, so early client bytes wait in the kernel buffer.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => this.#onConnection(socket));
    // Node closes connections over the limit itself, right after accept, and
    // emits 'drop': no Socket object, no per-connection work in a flood.
    // Node counts only its open sockets, though, and a pair on the native
    // plane has none: the limit is checked again on accept (#onConnection).
    server.maxConnections = this.#maxConnections;
    server.on('drop', () => this.#onDrop());
    const address = formatHostPort(this.#listen);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: this.#listen.host, port: this.#listen.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw listenError(address, err);
    }
    // After listening, errors come from accept (EMFILE, ENFILE...): libuv
    // already sheds the connection it cannot take, so log and keep going.
    server.on('error', (err) => {
      const suppressed = this.#serverErrorLog.take();
      if (suppressed !== undefined) this.#log.error('cannot accept connection', { error: errorMessage(err), suppressed });
    });
    this.#server = server;
    this.#warnCapacity();
    this.#unsubscribe = this.#source.onUpdate((set) => this.#forgetDeparted(set));
    this.#log.debug('forwarder listening', { listen: formatHostPort(this.address()) });
  }

  /** Listen with accepts in C: each client comes as a descriptor (`#onAccepted`), never as a socket. */
  #startNative(acceptor: NativeAcceptAddon): void {
    const address = formatHostPort(this.#listen);
    // The client's address (a getpeername on the JS path) only for those who read it: the access log, debug lines.
    const peers = this.#observer.closed !== undefined || this.#log.enabled?.('debug') !== false;
    let listening: { id: number; port: number };
    try {
      listening = acceptor.acceptListen(this.#listen.host, this.#listen.port, (fd, peer) => this.#onAccepted(acceptor, fd, peer), peers);
    } catch (err) {
      throw listenError(address, errnoError(err));
    }
    this.#listener = { id: listening.id, address: { host: this.#listen.host, port: listening.port } };
    this.#warnCapacity();
    this.#unsubscribe = this.#source.onUpdate((set) => this.#forgetDeparted(set));
    this.#log.debug('forwarder listening', { listen: formatHostPort(this.address()), accept: 'native' });
  }

  /** The open-file limit allows fewer pairs than --max-conns: said once, at start. */
  #warnCapacity(): void {
    // What the JS plane's two descriptors per pair allow: past the native plane's room, pairs stay in JavaScript.
    const capacity = this.#descriptors.capacity;
    if (this.#maxConnections > capacity) {
      this.#log.warn('the open-file limit allows fewer connections than --max-conns: raise it (ulimit -n) or expect clients closed at once', {
        openFiles: this.#descriptors.limit,
        connections: capacity,
        maxConnections: this.#maxConnections,
      });
    }
  }

  /**
   * A client a native accept took (`fd` its descriptor, now ours), or a
   * failed accept (`fd` a negative errno: the kernel's connection was shed).
   * The same checks as `#onConnection`; over the limit the client is closed
   * at once, as Node's `maxConnections` does.
   */
  #onAccepted(acceptor: NativeAcceptAddon, fd: number, peer: string | undefined): void {
    if (fd < 0) {
      const suppressed = this.#serverErrorLog.take();
      if (suppressed !== undefined) this.#log.error('cannot accept connection', { error: errnoName(-fd), suppressed });
      return;
    }
    if (this.#listener === undefined || this.#active >= this.#maxConnections) {
      closeSync(fd);
      if (this.#listener !== undefined) this.#onDrop();
      return;
    }
    if (!this.#descriptors.take()) {
      acceptor.acceptReset(fd);
      this.#rejectNoDescriptors();
      return;
    }
    this.stats.accepted++;
    const client = new AcceptedClient(fd, peer ?? '', acceptor, this.#accepted);
    this.#accepted.add(client);
    this.stats.active = ++this.#active;
    const over = this.#pairAccounting(1);
    this.#forward(client).then(over, this.#onForwardBug(over));
  }

  async #drain(): Promise<void> {
    // Only wait for a start in progress: with a server up, stop accepting
    // in this very tick (no await before server.close).
    if (!this.#server && !this.#listener && this.#starting) await this.#starting.catch(() => undefined);
    if (this.#listener) {
      this.#acceptor?.acceptClose(this.#listener.id);
      this.#listener = undefined;
    }
    this.#unsubscribe?.();
    const server = this.#server;
    const serverClosed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    if (this.#active > 0) {
      this.#log.info('draining connections', { active: this.#active, drainTimeout: this.#drainTimeout });
      timer = setTimeout(() => {
        this.#log.warn('drain timeout: closing the remaining connections', { active: this.#active });
        this.#hardStop.abort();
        for (const wait of this.#deadlines.drain()) wait.abort();
        for (const id of this.#nativeDials) this.#native?.dialer.abort(id);
        for (const socket of [...this.#clients, ...this.#backends]) resetSocket(socket);
        for (const client of [...this.#accepted]) client.reset();
      }, this.#drainTimeout);
    }
    await new Promise<void>((resolve) => {
      this.#onIdle = resolve;
      this.#checkIdle();
    });
    clearTimeout(timer);
    await serverClosed;
  }

  #checkIdle(): void {
    if (this.#onIdle && this.#active === 0 && this.#clients.size === 0 && this.#accepted.size === 0 && this.#backends.size === 0) {
      this.#onIdle();
      this.#onIdle = undefined;
    }
  }

  #onDrop(): void {
    this.stats.rejected++;
    const suppressed = this.#rejectLog.take('max-conns');
    if (suppressed !== undefined) {
      this.#log.warn('too many connections: closing new clients', { maxConnections: this.#maxConnections, suppressed });
    }
  }

  /** No descriptors left for another pair: closed at once and counted like a connection over --max-conns. */
  #onNoDescriptors(client: Socket): void {
    client.on('error', () => undefined);
    resetSocket(client);
    this.#rejectNoDescriptors();
  }

  #rejectNoDescriptors(): void {
    this.stats.rejected++;
    const suppressed = this.#rejectLog.take('open-files');
    if (suppressed !== undefined) {
      this.#log.warn('open-file limit reached: closing new clients', {
        openFiles: this.#descriptors.limit,
        connections: this.#descriptors.capacity,
        suppressed,
      });
    }
  }

  #onConnection(client: Socket): void {
    if (this.#active >= this.#maxConnections) {
      client.destroy();
      this.#onDrop();
      return;
    }
    if (!this.#descriptors.take()) {
      this.#onNoDescriptors(client);
      return;
    }
    this.stats.accepted++;
    this.#clients.add(client);
    this.stats.active = ++this.#active;
    client.on('error', this.#onClientError);
    // Neither `over` nor the close listener is made in this scope: a closure made here would hold
    // the client (scopes are shared by their closures) until the forwarding ends, long after a
    // native plane took the descriptor and the socket was destroyed.
    const over = this.#pairAccounting();
    client.once('close', forgetOnClose(this.#clients, over));
    this.#forward(client).then(over, this.#onForwardBug(over));
  }

  /** Accounted for once all `parts` are over: the forwarding (splice included) and the client socket, when there is one. */
  #pairAccounting(parts = 2): () => void {
    return () => {
      if (--parts > 0) return;
      this.#descriptors.release();
      this.stats.active = --this.#active;
      this.#checkIdle();
    };
  }

  /**
   * A bug, not a network condition: keep serving, but say so loudly. The
   * client was reset where it failed (`#forward`), or belongs to the plane.
   */
  #onForwardBug(over: () => void): (err: unknown) => void {
    return (err) => {
      this.#log.error('unexpected forwarding failure', { error: errorMessage(err) });
      over();
    };
  }

  /**
   * The backend set for a new connection. A forced drain must not wait on a
   * source that never answers; and a client that comes before the first
   * backend set (start-up) waits for it, but no longer than it would wait
   * for a backend to accept. Rejects with `ERR_ABORTED` when cut short.
   */
  #backendSet(): Promise<BackendSet> {
    if (this.#hardStop.signal.aborted) return Promise.reject(new SrvlinkError('ERR_ABORTED', WAIT_ABORTED));
    return new Promise((resolve, reject) => {
      const cut = (): void => reject(new SrvlinkError('ERR_ABORTED', WAIT_ABORTED));
      const deadline = this.#deadlines.add(Math.min(this.#connectTimeout, this.#dialDeadline), { expire: cut, abort: cut });
      this.#source.current().then(
        (set) => {
          deadline.cancel();
          resolve(set);
        },
        (err: unknown) => {
          deadline.cancel();
          reject(err);
        },
      );
    });
  }

  async #forward(client: Client): Promise<void> {
    let handed: { spliced: Promise<void> } | void;
    try {
      handed = await this.#forwardOrHandOff(client);
    } catch (err) {
      resetClient(client);
      throw err;
    }
    // Returned, not awaited: this frame ends here.
    return handed?.spliced;
  }

  /**
   * Find a backend for `client` and dial it; resolves when the pair is handed
   * to its plane (or the client closed), with the pair's end (`#splice`) as
   * the promise it returns: this frame, and the client it holds, are gone
   * while the pair runs.
   */
  async #forwardOrHandOff(client: Client): Promise<{ spliced: Promise<void> } | void> {
    const started = performance.now();
    // One deadline for everything before the splice (docs/architecture.md §4.3): however many backends fail, a client waits no longer.
    const deadline = started + this.#dialDeadline;
    // The client's address (a getpeername) only for those who read it: the access log, debug lines.
    const from =
      client instanceof AcceptedClient
        ? client.from
        : this.#observer.closed !== undefined || this.#log.enabled?.('debug') !== false
          ? `${client.remoteAddress ?? '?'}:${client.remotePort ?? '?'}`
          : '';
    const tried: string[] = [];
    const end = (outcome: ConnectionOutcome, backend?: string, bytesIn = 0, bytesOut = 0): void => {
      if (this.#observer.closed !== undefined) this.#closed({ client: from, backend, tried, bytesIn, bytesOut, ms: performance.now() - started, outcome });
    };
    let set: BackendSet;
    try {
      set = await this.#backendSet();
    } catch (err) {
      if (this.#hardStop.signal.aborted) {
        resetClient(client);
        end('aborted');
        return;
      }
      this.stats.failed++;
      if (performance.now() >= deadline) {
        this.stats.deadlineCloses++;
        end('deadline');
        this.#warnFailure('deadline', `no backend set for "${this.#name}" within the dial deadline (${this.#dialDeadline} ms)`, { dialDeadline: this.#dialDeadline });
      } else {
        this.stats.discoveryErrors++;
        end('discovery-failed');
        // The source's error names the service and says why (`no backends for "X": the name does not exist`).
        const message = errorMessage(err);
        this.#warnFailure(`discovery ${message}`, message, {});
      }
      resetClient(client);
      return;
    }
    if (client.destroyed) return end('aborted');
    const plan = this.#planOf(set);
    if (plan.size === 0) {
      this.stats.failed++;
      this.stats.noBackend++;
      end('no-backend');
      this.#warnFailure(`empty ${set.status}`, `no backends for "${set.name}" (${set.status})`, { service: set.name, status: set.status });
      resetClient(client);
      return;
    }
    // Ejected backends, and those a trial connection is probing, are held
    // back: dialed last, only once every admitted one has failed (or when none
    // is admitted), since trying a backend that failed recently beats
    // refusing the client outright. A restarted backend may still be ejected
    // while the others have just died. Dialed as a last resort, they take no probe slot.
    // While no backend is ejected the order is drawn as it is dialed: most
    // connections take the first candidate and draw nothing more.
    const candidates = this.#health.allOpen() ? new Candidates(plan, this.#random) : this.#heldBack(plan);
    /** Dials made, and how many of them to held-back candidates. */
    let dials = 0;
    let heldBackDials = 0;
    const reasons: string[] = [];
    /** The deadline ran out with backends left to try, or cut the last dial short. */
    let outOfTime = false;
    for (let candidate = candidates.next(); candidate !== undefined; candidate = candidates.next()) {
      if (client.destroyed) return end('aborted');
      const lastResort = candidates.isHeldBack(candidate);
      // Dials before this one took time: a backend may have been ejected, or taken for a probe, meanwhile: held back too.
      const admission = this.#health.admission(candidate.key);
      if (!lastResort && !this.#admits(admission)) {
        candidates.holdBack(candidate);
        continue;
      }
      const remaining = Math.ceil(deadline - performance.now());
      if (remaining <= 0) {
        outOfTime = true;
        break;
      }
      // Half-open (docs/architecture.md §4.3): the first connection to reach a backend whose ejection ran out probes it alone.
      const probe = !lastResort && admission === 'probe' && this.#health.startProbe(candidate.key);
      if (probe) this.#log.info(`backend ${describeCandidate(candidate)} of "${set.name}": ejection over, one connection probes it`, fieldsOf(candidate, set.name));
      // Moving on to the next backend after a failed dial is a failover.
      if (reasons.length > 0) this.stats.failovers++;
      const timeout = Math.min(this.#connectTimeout, remaining);
      dials++;
      if (lastResort) heldBackDials++;
      const dialStart = performance.now();
      let backend: Socket | number;
      try {
        if (this.#hardStop.signal.aborted) throw new DialError('ERR_DIAL_ABORTED', candidate.key, 'aborted');
        backend =
          this.#native !== undefined && NativeDialer.dialable(candidate.host)
            ? await this.#dialNative(this.#native.dialer, candidate, timeout)
            : await dialBackend(this.#dial, candidate.host, candidate.port, { timeout, deadlines: this.#deadlines });
      } catch (err) {
        if (err instanceof DialError && err.code === 'ERR_DIAL_ABORTED') {
          if (probe) this.#health.endProbe(candidate.key);
          resetClient(client);
          return end('aborted');
        }
        this.#dialed(candidate.key, false, performance.now() - dialStart);
        this.stats.connectFailures++;
        this.#backendStats(candidate.key).connectFailures++;
        if (err instanceof DialError && err.code === 'ERR_DIAL_TIMEOUT' && timeout < this.#connectTimeout) outOfTime = true;
        tried.push(candidate.key);
        reasons.push(`${candidate.key}: ${err instanceof DialError ? err.reason : errorMessage(err)}`);
        if (probe) this.stats.probeFailures++;
        this.#logHealth(this.#health.recordFailure(candidate.key), candidate, set.name, probe);
        if (probe) this.#health.endProbe(candidate.key);
        this.#log.debug('cannot dial backend', { service: set.name, backend: candidate.key, error: errorMessage(err) });
        if (outOfTime) break;
        continue;
      }
      const dialTime = performance.now() - dialStart;
      this.#dialed(candidate.key, true, dialTime);
      if (probe) this.stats.probeSuccesses++;
      this.#logHealth(this.#health.recordSuccess(candidate.key), candidate, set.name, probe);
      if (probe) this.#health.endProbe(candidate.key);
      if (client.destroyed) {
        // The client left (or a forced drain took it) while we dialed.
        if (typeof backend === 'number') closeSync(backend);
        else backend.destroy();
        return end('aborted', candidate.key);
      }
      const key = candidate.key;
      return { spliced: this.#splice(client, backend, candidate, set.name, from, dialTime, started).then((result) => end(result.end, key, result.bytesIn, result.bytesOut)) };
    }
    this.stats.failed++;
    const listed = reasons.slice(0, MAX_TRIED_LISTED).join(', ') + (reasons.length > MAX_TRIED_LISTED ? `, and ${reasons.length - MAX_TRIED_LISTED} more` : '');
    // Every candidate was dialed at most once: those not dialed are the held-back ones (skipped) and the others (not tried).
    const skipped = candidates.heldBack - heldBackDials;
    const untried = candidates.size - dials - skipped;
    if (outOfTime) {
      this.stats.deadlineCloses++;
      this.#warnFailure(
        'deadline',
        `no backend of "${set.name}" answered within the dial deadline (${this.#dialDeadline} ms; tried ${listed || 'none'}${untried > 0 ? `; ${untried} not tried` : ''}${skipped > 0 ? `; skipped ${skipped} ejected` : ''})`,
        { service: set.name, tried: reasons, untried, skipped, dialDeadline: this.#dialDeadline },
      );
      resetClient(client);
      end('deadline');
      return;
    }
    this.#warnFailure('unreachable', `cannot reach any backend of "${set.name}" (tried ${listed}${skipped > 0 ? `; skipped ${skipped} ejected` : ''})`, {
      service: set.name,
      tried: reasons,
      skipped,
    });
    resetClient(client);
    end('unreachable');
  }

  /** A dial ended: the observer is told; whatever it throws, forwarding goes on. */
  #dialed(key: string, ok: boolean, ms: number): void {
    const dialed = this.#observer.dialed;
    if (dialed === undefined) return;
    try {
      dialed(key, ok, ms);
    } catch (err) {
      this.#log.debug('forwarder observer failed', { error: errorMessage(err) });
    }
  }

  /** A connection is over: the observer is told; whatever it throws, forwarding goes on. */
  #closed(record: ConnectionRecord): void {
    try {
      this.#observer.closed?.(record);
    } catch (err) {
      this.#log.debug('forwarder observer failed', { error: errorMessage(err) });
    }
  }

  /** Dial `candidate` in C: the connected descriptor, or a `DialError` as `dialBackend` gives. */
  #dialNative(dialer: NativeDialer, candidate: Candidate, timeout: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const id = dialer.dial(candidate.host, candidate.port, timeout, candidate.key, (fd, error) => {
        this.#nativeDials.delete(id);
        if (error === undefined) resolve(fd);
        else reject(error);
      });
      this.#nativeDials.add(id);
    });
  }

  /**
   * Hand the pair to its plane; the promise settles with the pair's end. Not
   * an async function, and no closure here takes the client or the backend:
   * once the native plane holds their descriptors nothing keeps the destroyed
   * sockets in memory while the pair runs.
   */
  #splice(
    client: Client,
    dialed: Socket | number,
    candidate: Candidate,
    service: string,
    from: string,
    dialTime: number,
    started: number,
  ): Promise<{ end: SpliceResult['end']; bytesIn: number; bytesOut: number }> {
    const perBackend = this.#backendStats(candidate.key);
    perBackend.connections++;
    perBackend.active++;
    perBackend.dialTime += dialTime;
    this.stats.forwarded++;
    this.#log.debug('connection forwarded', { client: from, service, backend: candidate.key, dialMs: Math.round(dialTime) });
    const counts = { bytesIn: 0, bytesOut: 0 };
    const options: SpliceOptions = {
      idleTimeout: this.#idleTimeout,
      signal: this.#hardStop.signal,
      onClientData: (n) => {
        counts.bytesIn += n;
        this.stats.bytesIn += n;
        perBackend.bytesIn += n;
      },
      onBackendData: (n) => {
        counts.bytesOut += n;
        this.stats.bytesOut += n;
        perBackend.bytesOut += n;
      },
    };
    const key = candidate.key;
    const done = (result: SpliceResult): { end: SpliceResult['end']; bytesIn: number; bytesOut: number } => {
      perBackend.active--;
      if (result.end === 'idle') this.stats.idleTimeouts++;
      this.#log.debug('connection closed', {
        client: from,
        backend: key,
        end: result.end,
        error: result.error,
        bytesIn: counts.bytesIn,
        bytesOut: counts.bytesOut,
        ms: Math.round(performance.now() - started),
      });
      return { end: result.end, ...counts };
    };
    // A native dial's descriptor goes to the native plane as it is: no JS socket for it ever (nor for a native accept's client).
    if (typeof dialed === 'number' && this.#native !== undefined) {
      if (client instanceof AcceptedClient) return this.#native.plane.spliceAccepted(client.handOff(), dialed, options).then(done);
      return this.#native.plane.spliceDialed(client, dialed, options).then(done);
    }
    // A backend dialed in JavaScript (a host name): a native accept's client becomes a socket, taken as any.
    const socket = client instanceof AcceptedClient ? socketOfFd(client.handOff(), true) : client;
    return this.#dataPlane.splice(socket, this.#watchBackend(typeof dialed === 'number' ? socketOfFd(dialed) : dialed), options).then(done);
  }

  /** A backend socket of this forwarder's: known to a forced drain until it closes. */
  #watchBackend(backend: Socket): Socket {
    this.#backends.add(backend);
    backend.once('close', () => {
      this.#backends.delete(backend);
      this.#checkIdle();
    });
    // Sockets of the default dial have it already (then this does nothing); a seam's may not.
    backend.setNoDelay(true);
    return backend;
  }

  /** The plan of `set`: made on its first connection, kept while the set is the current one. */
  #planOf(set: BackendSet): SetPlan {
    if (this.#plan?.set === set) return this.#plan;
    const seen = new Set<string>();
    let duplicates = false;
    const planned: PlannedBackend[] = [];
    for (const backend of set.backends) {
      // Port 0 is nothing to dial (discovery leaves such records out; a source that does not is no reason to eject).
      if (backend.port === 0) continue;
      const target = backendName(backend);
      const candidates: Candidate[] = [];
      for (const host of backend.addresses) {
        const key = formatHostPort({ host, port: backend.port });
        if (seen.has(key)) duplicates = true;
        seen.add(key);
        candidates.push({ host, port: backend.port, key, target });
      }
      planned.push({ priority: backend.priority, weight: backend.weight, candidates });
    }
    this.#plan = { set, order: new BackendOrder(planned), size: seen.size, duplicates };
    return this.#plan;
  }

  /** The candidates of a connection while some backend is ejected or half-open: the admitted ones in order, then the others, held back. */
  #heldBack(plan: SetPlan): Candidates {
    const admitted: Candidate[] = [];
    const heldBack: Candidate[] = [];
    const order = new Candidates(plan, this.#random);
    for (let candidate = order.next(); candidate !== undefined; candidate = order.next()) {
      (this.#admits(this.#health.admission(candidate.key)) ? admitted : heldBack).push(candidate);
    }
    return Candidates.of(plan, admitted, heldBack);
  }

  #backendStats(key: string): BackendStats {
    let entry = this.stats.backends.get(key);
    if (!entry) {
      entry = { connections: 0, active: 0, connectFailures: 0, ejections: 0, bytesIn: 0, bytesOut: 0, dialTime: 0 };
      this.stats.backends.set(key, entry);
    }
    return entry;
  }

  /** A new set: drop health and stats of backends that left it, so memory follows the set, not its history. */
  #forgetDeparted(set: BackendSet): void {
    const keys = new Set(set.backends.flatMap((backend) => backend.addresses.map((host) => formatHostPort({ host, port: backend.port }))));
    this.#health.retain(keys);
    for (const [key, entry] of this.stats.backends) if (!keys.has(key) && entry.active === 0) this.stats.backends.delete(key);
  }

  /** Whether a connection that is not the last resort may dial a backend in this state. */
  #admits(admission: Admission): boolean {
    return admission === 'open' || admission === 'probe';
  }

  /** One log line per ejection and per return; `probe`: the dial was the half-open trial. */
  #logHealth(change: HealthChange | undefined, candidate: Candidate, service: string, probe: boolean): void {
    const fields = { ...fieldsOf(candidate, service), ...(probe ? { probe: true } : {}) };
    if (change?.kind === 'ejected') {
      this.stats.ejections++;
      this.#backendStats(change.key).ejections++;
      const why = probe
        ? 'its probe failed'
        : `${change.failures} consecutive connect failure${change.failures === 1 ? '' : 's'}`;
      this.#log.warn(`backend ${describeCandidate(candidate)} of "${service}" ejected for ${change.duration} ms after ${why}`, {
        ...fields,
        failures: change.failures,
        ejections: change.ejections,
        ejectMs: change.duration,
      });
    } else if (change?.kind === 'restored') {
      this.#log.info(`backend ${describeCandidate(candidate)} of "${service}" is reachable again${probe ? ': its probe connected' : ''}`, {
        ...fields,
        ejections: change.ejections,
      });
    }
  }

  /** A client closed without a backend: one line per `cause`, then counted (`suppressed` in its next line, at most one per minute). */
  #warnFailure(cause: string, msg: string, fields: Record<string, unknown>): void {
    const suppressed = this.#failureLog.take(cause);
    if (suppressed !== undefined) this.#log.warn(msg, suppressed > 0 ? { ...fields, suppressed } : fields);
  }
}

/**
 * The candidates of one connection in dialing order: RFC 2782 order of the
 * backends, then each backend's addresses in order (same port), a duplicate
 * address dialed once; then those held back, in the order they were. Drawn
 * as it is read from the set's plan, or read from lists made beforehand.
 */
class Candidates {
  /** Candidates in all (each once). */
  readonly size: number;
  readonly #cursor: OrderCursor<PlannedBackend> | undefined;
  /** The addresses of the backend being read, or the list made beforehand. */
  #current: readonly Candidate[];
  #index = 0;
  /** Keys given so far, only when the plan has duplicates. */
  readonly #seen: Set<string> | undefined;
  /** Held back: read after everything else, in the order they were held back. */
  #heldBack: Candidate[] | undefined;
  #heldBackSet: Set<Candidate> | undefined;
  #heldBackIndex = 0;

  constructor(plan: SetPlan, random: () => number) {
    this.size = plan.size;
    this.#cursor = plan.order.draw(random);
    this.#current = [];
    this.#seen = plan.duplicates ? new Set() : undefined;
  }

  /** `first`, then `heldBack`: lists made beforehand, each candidate of `plan` in one of them. */
  static of(plan: SetPlan, first: readonly Candidate[], heldBack: readonly Candidate[]): Candidates {
    const candidates = new Candidates({ ...plan, order: NO_ORDER, duplicates: false }, Math.random);
    candidates.#current = first;
    for (const candidate of heldBack) candidates.holdBack(candidate);
    return candidates;
  }

  /** Candidates held back so far. */
  get heldBack(): number {
    return this.#heldBack?.length ?? 0;
  }

  /** Dial `candidate` only after every other: it is read again after the rest. */
  holdBack(candidate: Candidate): void {
    (this.#heldBack ??= []).push(candidate);
    (this.#heldBackSet ??= new Set()).add(candidate);
  }

  isHeldBack(candidate: Candidate): boolean {
    return this.#heldBackSet?.has(candidate) ?? false;
  }

  next(): Candidate | undefined {
    for (;;) {
      const candidate = this.#current[this.#index++];
      if (candidate === undefined) {
        const backend = this.#cursor?.next();
        if (backend !== undefined) {
          this.#current = backend.candidates;
          this.#index = 0;
          continue;
        }
        return this.#heldBack?.[this.#heldBackIndex++];
      }
      if (this.#seen !== undefined) {
        if (this.#seen.has(candidate.key)) continue;
        this.#seen.add(candidate.key);
      }
      return candidate;
    }
  }
}

/** The order of no backend: for candidates read from lists. */
const NO_ORDER = new BackendOrder<PlannedBackend>([]);

/** A backend as log lines name it: its address, and its instance when that says more (`10.0.0.5:5432 (pg-1.postgres.env1.skydns.local)`). */
function describeCandidate(candidate: Candidate): string {
  return candidate.target === candidate.host ? candidate.key : `${candidate.key} (${candidate.target})`;
}

/** The fields that name a backend in a log line. */
function fieldsOf(candidate: Candidate, service: string): Record<string, string> {
  return { service, backend: candidate.key, target: candidate.target };
}

/** A whole number setting in range, or an `InvalidArgumentError` naming the forwarder. */
function checkSetting(name: string, what: string, value: unknown, min: number, unit: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_TIMER_MS) {
    throw new InvalidArgumentError(`invalid ${what} "${String(value)}" for forwarder "${name}": expected a whole number of ${unit} from ${min} to ${MAX_TIMER_MS}`);
  }
  return value;
}

/** A client of the forwarder: a socket of its `net.Server`, or a descriptor of a native accept's. */
type Client = Socket | AcceptedClient;

/**
 * A client a native accept took, by descriptor, until a plane holds it
 * (`handOff`) or it is reset. Nothing watches it meanwhile: a client that
 * leaves while its backend is dialed is seen by the plane (its FIN or reset
 * is passed on), not here (`destroyed` is only this forwarder's own reset).
 */
class AcceptedClient {
  readonly fd: number;
  /** `address:port`, when the forwarder asked for it; else ''. */
  readonly from: string;
  destroyed = false;
  readonly #acceptor: NativeAcceptAddon;
  readonly #pending: Set<AcceptedClient>;

  constructor(fd: number, from: string, acceptor: NativeAcceptAddon, pending: Set<AcceptedClient>) {
    this.fd = fd;
    this.from = from;
    this.#acceptor = acceptor;
    this.#pending = pending;
  }

  /** The descriptor, for a plane that takes it: no longer this forwarder's. */
  handOff(): number {
    this.destroyed = true;
    this.#pending.delete(this);
    return this.fd;
  }

  /** Close with a reset (a FIN would read as an empty reply); once. */
  reset(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#pending.delete(this);
    this.#acceptor.acceptReset(this.fd);
  }
}

function resetClient(client: Client): void {
  if (client instanceof AcceptedClient) client.reset();
  else resetSocket(client);
}

/** A native binding's error (code `E<errno>`) with the errno's name as its code, as Node's errors have it. */
function errnoError(err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^E\d+$/.test(code)) return err;
  return Object.assign(new Error(errorMessage(err)), { code: errnoName(Number(code.slice(1))) });
}

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, value]) => [value, name]));

function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/**
 * A client's close listener: forget it in `clients`, then `over()`. Made
 * out here so that it holds the socket only as `this`, while it is listening.
 */
function forgetOnClose(clients: Set<Socket>, over: () => void): (this: Socket) => void {
  return function (this: Socket) {
    clients.delete(this);
    over();
  };
}
