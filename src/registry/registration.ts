import { MAX_TIMER_MS } from '../core/duration.js';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { abortableSleep, deferred, type Deferred } from '../core/abort.js';
import { backoffDelay } from '../core/backoff.js';
import { InvalidArgumentError, SrvlinkError, errorMessage } from '../core/errors.js';
import type { Service } from '../core/lifecycle.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { LogThrottle } from '../core/log-throttle.js';
import { REGISTRATION_DEFAULTS } from './registration-defaults.js';
import type { EtcdGateway } from './etcd-gateway.js';
import { EtcdLease } from './etcd-lease.js';
import type { CheckResult, HealthCheck } from './health-check.js';
import { INITIAL_HEALTH_STATE, nextHealthState, type HealthState } from './health-state.js';

/**
 * Where a registration stands:
 * - `idle`: not started yet;
 * - `unhealthy`: the health check does not pass (yet): the key is not in etcd;
 * - `waiting-for-etcd`: healthy (or unchecked), the key is being put or etcd
 *   does not answer: retrying with backoff;
 * - `registered`: the key is in etcd under a live lease;
 * - `closed`: `close()` was called; the lease is revoked.
 */
export type RegistrationState = 'idle' | 'unhealthy' | 'waiting-for-etcd' | 'registered' | 'closed';

/** Why the key left etcd. */
export type DeregistrationReason = 'unhealthy' | 'lease-lost' | 'closed';

/** The events a `Registration` emits, with their arguments. */
export interface RegistrationEvents {
  /** Every change of `state`. */
  state: [state: RegistrationState, previous: RegistrationState];
  /** The key was put under a fresh lease (at start, after a lost lease, after turning healthy). */
  registered: [info: { key: string; lease: string }];
  /**
   * The key is gone (or going): `revoked` tells whether etcd confirmed the
   * lease revocation; when it did not (etcd unreachable), the key expires
   * with the lease, within `ttl`, since nothing keeps the lease alive anymore.
   */
  deregistered: [info: { key: string; reason: DeregistrationReason; revoked: boolean }];
  /** An attempt to register failed; the next one comes in `delay` ms. */
  retrying: [info: { error: Error; attempt: number; delay: number }];
  /** etcd acknowledged a keepalive of the current lease. */
  renewed: [info: { lease: string }];
  /** One health check ran. */
  check: [info: { passed: boolean; reason: string; health: HealthState }];
}

/** The last result of the health check: what `/status` shows. */
export interface LastCheck extends CheckResult {
  /** When that run ended (ISO 8601). */
  readonly at: string;
}

export interface RegistrationOptions {
  /** etcd (its JSON gateway); owned by the caller: the registration neither creates nor closes it. */
  client: EtcdGateway;
  /** The etcd key (`registrationKey`). */
  key: string;
  /** The value, written as JSON (`recordValue`). */
  value: object;
  /** Lease TTL, whole seconds (`--ttl`). Default 10. */
  ttl?: number;
  /** Health gate: without one the key is always registered. */
  check?: HealthCheck;
  /**
   * Ms from the start of one check to the start of the next (HAProxy's
   * `inter`); a check that takes longer is followed at once. So a server
   * that stops answering is deregistered within `interval × fall + timeout`.
   * Default 2000.
   */
  interval?: number;
  /** Passes in a row that make the instance healthy. Default 2. */
  rise?: number;
  /** Failures in a row that make it unhealthy. Default 3. */
  fall?: number;
  /** First retry delay after a failed registration, ms (jittered down to half). Default 1000. */
  retryMin?: number;
  /** Longest retry delay, ms. Default 10000. */
  retryMax?: number;
  /** Deadline of one etcd call (grant, put, revoke), ms. Default 5000. */
  callTimeout?: number;
  logger?: Logger;
  /** Jitter source, [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Clock for log throttling, ms, monotonic. Default `performance.now`. */
  now?: () => number;
  /** Wall clock for `lastCheck.at`, ms since the epoch. Default `Date.now`. */
  clock?: () => number;
}

/** While etcd stays unreachable, a reminder this often (ms); the retries in between log at debug level. */
const WARN_EVERY = 60_000;
/** Causes of the warnings throttle: registering fails; keepalives fail (logged once, and the recovery once). */
const REGISTER = 'register';
const KEEPALIVE = 'keepalive';
/** etcd stores a lease TTL as int64 seconds; a day is more than anyone means. */
const MAX_TTL = 86_400;

/** One lease and whether the key has been put under it. */
interface Held {
  readonly lease: EtcdLease;
  id: string | undefined;
  /** The put under this lease succeeded: the key is (or was until lost) in etcd. */
  live: boolean;
}

type Outcome = 'registered' | 'failed' | 'closed';

/**
 * Registers one service instance in etcd (docs/architecture.md §4.4): `key` holds
 * `value` under a lease of `ttl` seconds that is kept alive. When the lease
 * is lost (etcd unreachable for longer than the lease, or revoked by someone
 * else), a new lease is granted and the key put again as soon as etcd
 * answers, retrying with a capped, jittered backoff. With a health check the
 * key exists only while the instance is healthy (rise/fall, starting
 * unhealthy). `close()` revokes the lease, so the key is gone at once.
 *
 * `start()` resolves once the first registration attempt has been made
 * (with a check: once the first check has run, and, when that made the
 * instance healthy, the first attempt too); it never fails because etcd is
 * down: the registration keeps trying in the background.
 */
export class Registration extends EventEmitter<RegistrationEvents> implements Service<string> {
  readonly key: string;
  readonly #client: EtcdGateway;
  readonly #json: string;
  readonly #ttl: number;
  readonly #check: HealthCheck | undefined;
  readonly #interval: number;
  readonly #rise: number;
  readonly #fall: number;
  readonly #retryMin: number;
  readonly #retryMax: number;
  readonly #callTimeout: number;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #clock: () => number;
  readonly #log: Logger;
  /** Aborted by `close()`: ends a running check and the sleep between checks. */
  readonly #abort = new AbortController();
  #state: RegistrationState = 'idle';
  #health: HealthState;
  #lastCheck: LastCheck | undefined;
  #held: Held | undefined;
  /** Why the last attempt failed; undefined after a success (one warning per outage, not one per retry). */
  #lastError: Error | undefined;
  /** One warning per outage and a reminder every WARN_EVERY, not one line per retry. */
  readonly #warnings: LogThrottle;
  /** Failed attempts in a row. */
  #failures = 0;
  #closed = false;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #loops: Promise<void>[] = [];
  /** Ends the reconcile loop's current sleep early (a health change, a lost lease, close). */
  #wake: (() => void) | undefined;
  /** Resolved once the first registration attempt has been made. */
  readonly #firstAttempt: Deferred<void>;
  /** Resolved once the first health check has run. */
  readonly #firstCheck: Deferred<void>;

  constructor(options: RegistrationOptions) {
    super();
    const key = options.key;
    if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`invalid registration key "${String(key)}": expected a non-empty etcd key`);
    const whole = (what: string, value: number | undefined, fallback: number, min: number, max: number, unit: string): number => {
      const chosen = value ?? fallback;
      if (!Number.isInteger(chosen) || chosen < min || chosen > max) {
        throw new InvalidArgumentError(`invalid ${what} "${String(chosen)}" for registration "${key}": expected a whole number of ${unit} from ${min} to ${max}`);
      }
      return chosen;
    };
    this.key = key;
    this.#client = options.client;
    this.#json = JSON.stringify(options.value);
    this.#ttl = whole('ttl', options.ttl, REGISTRATION_DEFAULTS.ttl, 1, MAX_TTL, 'seconds');
    this.#check = options.check;
    this.#interval = whole('check interval', options.interval, REGISTRATION_DEFAULTS.interval, 1, MAX_TIMER_MS, 'ms');
    this.#rise = whole('rise', options.rise, REGISTRATION_DEFAULTS.rise, 1, 1000, 'checks');
    this.#fall = whole('fall', options.fall, REGISTRATION_DEFAULTS.fall, 1, 1000, 'checks');
    this.#retryMin = whole('retry delay', options.retryMin, REGISTRATION_DEFAULTS.retryMin, 1, MAX_TIMER_MS, 'ms');
    this.#retryMax = whole('longest retry delay', options.retryMax, REGISTRATION_DEFAULTS.retryMax, this.#retryMin, MAX_TIMER_MS, 'ms');
    this.#callTimeout = whole('etcd call timeout', options.callTimeout, REGISTRATION_DEFAULTS.callTimeout, 1, MAX_TIMER_MS, 'ms');
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? (() => performance.now());
    this.#warnings = new LogThrottle({ interval: WARN_EVERY, now: this.#now });
    this.#clock = options.clock ?? Date.now;
    this.#log = (options.logger ?? silentLogger).child({ key });
    // Without a check the instance counts as healthy from the start.
    this.#health = this.#check === undefined ? { healthy: true, passes: 0, failures: 0 } : INITIAL_HEALTH_STATE;
    this.#firstAttempt = deferred();
    this.#firstCheck = deferred();
  }

  /** The current state (see `RegistrationState`). */
  get state(): RegistrationState {
    return this.#state;
  }

  /** The health check's last result, undefined before the first run (or without a check). */
  get lastCheck(): LastCheck | undefined {
    return this.#lastCheck;
  }

  /** Whether the instance counts as healthy now (rise/fall applied); true without a check. */
  get healthy(): boolean {
    return this.#health.healthy;
  }

  /** The id of the lease the key is registered under (decimal), while `registered`. */
  get lease(): string | undefined {
    return this.#held?.live ? this.#held.id : undefined;
  }

  /** The key this registration writes (the `Service` shape: where it "listens"). */
  address(): string {
    return this.key;
  }

  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new SrvlinkError('ERR_REGISTRATION_CLOSED', `cannot start registration "${this.key}": it is closed`));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#updateState();
    this.#log.info('registration starting', {
      ttl: this.#ttl,
      ...(this.#check ? { check: this.#check.description, interval: this.#interval, rise: this.#rise, fall: this.#fall } : {}),
    });
    this.#loops.push(this.#reconcileLoop());
    if (this.#check) {
      this.#loops.push(this.#checkLoop(this.#check));
      await this.#firstCheck.promise;
      if (!this.#health.healthy) return;
    }
    await this.#firstAttempt.promise;
  }

  /** Revoke the lease (the key disappears at once) and stop; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#wake?.();
    // Revoke at once, even while a put is in flight: etcd applies the two in
    // order, and a put that comes after the revoke fails (lease not found).
    const held = this.#held;
    this.#held = undefined;
    const revoked = held ? await this.#revoke(held) : false;
    await Promise.all(this.#loops);
    this.#updateState();
    this.#firstAttempt.resolve();
    this.#firstCheck.resolve();
    if (held?.live) {
      this.#log.info('deregistered', { reason: 'closed', lease: held.id, revoked });
      this.emit('deregistered', { key: this.key, reason: 'closed', revoked });
    }
  }

  /**
   * The one place that talks to etcd about the key: brings etcd in line with
   * what is wanted (registered while healthy and open, gone otherwise), one
   * step at a time, so grants, puts and revokes never race each other.
   */
  async #reconcileLoop(): Promise<void> {
    while (!this.#closed) {
      const wanted = this.#health.healthy;
      if (wanted && this.#held === undefined) {
        const outcome = await this.#register();
        this.#firstAttempt.resolve();
        if (outcome === 'registered') this.#failures = 0;
        if (outcome !== 'failed') continue;
        if (this.#closed) break;
        this.#failures++;
        const delay = backoffDelay(this.#failures, { min: this.#retryMin, max: this.#retryMax, random: this.#random });
        this.emit('retrying', { error: this.#lastError ?? new Error('unknown'), attempt: this.#failures, delay });
        await this.#sleep(delay);
      } else if (!wanted && this.#held !== undefined) {
        const held = this.#held;
        this.#held = undefined;
        const revoked = await this.#revoke(held);
        this.#updateState();
        if (held.live) {
          this.#log.info('deregistered', { reason: 'unhealthy', lease: held.id, revoked });
          this.emit('deregistered', { key: this.key, reason: 'unhealthy', revoked });
        }
      } else {
        this.#failures = 0;
        await this.#sleep(undefined);
      }
    }
  }

  /** Grant a lease, put the key under it. */
  async #register(): Promise<Outcome> {
    const lease = new EtcdLease(this.#client, this.#ttl, { callTimeout: this.#callTimeout });
    const held: Held = { lease, id: undefined, live: false };
    // A new lease has not failed a keepalive yet.
    this.#warnings.clear(KEEPALIVE);
    this.#held = held;
    lease.on('lost', (err) => this.#onLost(held, err));
    lease.on('keepaliveFailed', (err: unknown) => this.#onKeepaliveFailed(held, err));
    lease.on('keepaliveSucceeded', () => this.#onKeepaliveSucceeded(held));
    try {
      held.id = await lease.grant();
      await lease.put(this.key, this.#json);
    } catch (err) {
      if (this.#held === held) {
        this.#held = undefined;
        // The grant may have gone through: do not leave a lease behind.
        void this.#revoke(held);
      }
      if (this.#closed) return 'closed';
      const error = err instanceof Error ? err : new Error(String(err));
      // One warning when etcd stops answering, then a reminder a minute,
      // not one line per retry.
      const suppressed = this.#warnings.take(REGISTER);
      if (suppressed !== undefined) {
        this.#log.warn('cannot register in etcd, retrying', { error: errorMessage(error), failures: this.#failures + 1, ...(suppressed > 0 ? { suppressed } : {}) });
      } else {
        this.#log.debug('cannot register in etcd, retrying', { error: errorMessage(error) });
      }
      this.#lastError = error;
      this.#updateState();
      return 'failed';
    }
    if (this.#held !== held) {
      if (this.#closed) return 'closed';
      // Lost between grant and put: try again, with the backoff of a failure.
      this.#lastError = new SrvlinkError('ERR_LEASE_LOST', `lease ${held.id ?? '?'} was lost while registering`);
      return 'failed';
    }
    held.live = true;
    this.#lastError = undefined;
    this.#warnings.clear(REGISTER);
    this.#log.info('registered', { lease: held.id, ttl: this.#ttl });
    this.#updateState();
    this.emit('registered', { key: this.key, lease: held.id });
    return 'registered';
  }

  /** Revoke `held`'s lease (which also stops its keepalives); whether etcd confirmed it. */
  async #revoke(held: Held): Promise<boolean> {
    try {
      await held.lease.revoke();
      return true;
    } catch (err) {
      if (held.live) {
        this.#log.warn('cannot revoke lease: the key expires with it', { lease: held.id, ttl: this.#ttl, error: errorMessage(err) });
      }
      return false;
    }
  }

  /**
   * The etcd client gave the lease up: etcd said it is gone (expired,
   * revoked by someone else) or could not be reached for twice its TTL.
   * Either way the key is gone or about to be: register anew.
   */
  #onLost(held: Held, err: unknown): void {
    if (this.#held !== held) return;
    this.#held = undefined;
    // Lost before the put: the registration attempt fails and retries by itself.
    if (!held.live) return;
    this.#log.warn('lease lost, registering again', { lease: held.id, error: errorMessage(err) });
    this.#updateState();
    this.emit('deregistered', { key: this.key, reason: 'lease-lost', revoked: false });
    this.#wake?.();
  }

  #onKeepaliveFailed(held: Held, err: unknown): void {
    if (this.#held !== held || !held.live) return;
    if (this.#warnings.take(KEEPALIVE) === undefined) return;
    this.#log.warn('cannot renew lease: etcd unreachable, retrying', { lease: held.id, ttl: this.#ttl, error: errorMessage(err) });
  }

  #onKeepaliveSucceeded(held: Held): void {
    if (this.#held !== held || !held.live || held.id === undefined) return;
    if (this.#warnings.clear(KEEPALIVE) !== undefined) {
      this.#log.info('lease renewed again', { lease: held.id });
    }
    this.emit('renewed', { lease: held.id });
  }

  async #checkLoop(check: HealthCheck): Promise<void> {
    const signal = this.#abort.signal;
    while (!this.#closed) {
      const started = this.#now();
      const result = await check.run(signal);
      if (this.#closed) break;
      const before = this.#health;
      const previous = this.#lastCheck;
      this.#health = nextHealthState(before, result.ok, { rise: this.#rise, fall: this.#fall });
      this.#lastCheck = Object.freeze({ ok: result.ok, reason: result.reason, at: new Date(this.#clock()).toISOString() });
      const turned = this.#health.healthy !== before.healthy;
      // One line per change of the result (or of its reason), not per run:
      // a server that keeps failing the same way is said once.
      if (turned || previous === undefined || previous.ok !== result.ok || previous.reason !== result.reason) {
        const fields = {
          check: check.description,
          ok: result.ok,
          reason: result.reason,
          healthy: this.#health.healthy,
          ...(this.#health.healthy ? { failures: this.#health.failures, fall: this.#fall } : { passes: this.#health.passes, rise: this.#rise }),
        };
        if (turned) {
          if (this.#health.healthy) this.#log.info('health check passing', fields);
          else this.#log.warn('health check failing', fields);
        } else if (result.ok) {
          this.#log.info('health check passed', fields);
        } else {
          this.#log.warn('health check failed', fields);
        }
      }
      if (turned) {
        this.#updateState();
        this.#wake?.();
      }
      this.emit('check', { passed: result.ok, reason: result.reason, health: this.#health });
      this.#firstCheck.resolve();
      // Start to start: the time the check took counts against the interval.
      await abortableSleep(Math.max(0, this.#interval - (this.#now() - started)), signal);
    }
  }

  /** Sleep `ms` (forever when undefined) or until `#wake()`. */
  #sleep(ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
    });
  }

  #updateState(): void {
    const previous = this.#state;
    const next: RegistrationState = this.#closed
      ? 'closed'
      : !this.#health.healthy
        ? 'unhealthy'
        : this.#held?.live
          ? 'registered'
          : 'waiting-for-etcd';
    if (next === previous) return;
    this.#state = next;
    this.emit('state', next, previous);
  }
}
