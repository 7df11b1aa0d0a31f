import { EventEmitter } from 'node:events';
import { SrvlinkError, errorMessage } from '../core/errors.js';
import { EtcdCallError, GRPC_NOT_FOUND, type EtcdGateway } from './etcd-gateway.js';

/** The events an `EtcdLease` emits. */
export interface EtcdLeaseEvents {
  /** The lease is gone (`ERR_LEASE_LOST`): etcd says so, or it could not be renewed for twice its TTL. Emitted once. */
  lost: [err: SrvlinkError];
  /** A keepalive failed (etcd unreachable); the next one comes at the usual time. */
  keepaliveFailed: [err: Error];
  /** etcd renewed the lease. */
  keepaliveSucceeded: [];
}

/** What etcd answers to a grant and a keepalive (int64 as decimal strings). */
interface LeaseAnswer {
  ID?: string;
  TTL?: string;
}

/**
 * One etcd lease of `ttl` seconds, kept alive from `grant()` on (a
 * keepalive every ttl/3 s, as etcd's own clients do) until `revoke()`, or
 * until it is lost: etcd says it no longer exists (expired, revoked by
 * someone else, or a restored cluster that forgot it), or no keepalive got
 * through for twice its TTL (it has expired in etcd by then).
 */
export class EtcdLease extends EventEmitter<EtcdLeaseEvents> {
  readonly #gateway: EtcdGateway;
  readonly #ttl: number;
  readonly #callTimeout: number;
  #id: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When etcd last confirmed the lease (grant or keepalive), ms since the epoch. */
  #renewed = 0;
  #done = false;

  constructor(gateway: EtcdGateway, ttl: number, options: { callTimeout: number }) {
    super();
    this.#gateway = gateway;
    this.#ttl = ttl;
    this.#callTimeout = options.callTimeout;
  }

  /** The lease's id (decimal), once granted. */
  get id(): string | undefined {
    return this.#id;
  }

  /** Ask etcd for the lease; resolves with its id and keeps it alive from then on. */
  async grant(): Promise<string> {
    const answer = await this.#gateway.call<LeaseAnswer>('lease/grant', { TTL: this.#ttl }, Date.now() + this.#callTimeout);
    if (answer.ID === undefined || !/^[0-9]+$/.test(answer.ID)) throw new EtcdCallError(`etcd granted a lease without an id: ${JSON.stringify(answer)}`, undefined);
    this.#id = answer.ID;
    this.#renewed = Date.now();
    if (this.#done) {
      // Revoked or lost while the grant was on its way: nothing may keep this one alive.
      void this.#revokeGranted(answer.ID);
      throw new SrvlinkError('ERR_LEASE_LOST', `lease ${answer.ID} was given up while it was granted`);
    }
    this.#schedule();
    return answer.ID;
  }

  /** Put `key` = `value` under the lease. */
  async put(key: string, value: string): Promise<void> {
    const id = this.#granted('put');
    await this.#gateway.call('kv/put', { key: base64(key), value: base64(value), lease: id }, Date.now() + this.#callTimeout);
  }

  /**
   * Stop keeping the lease alive and revoke it: its keys are gone at once.
   * A lease etcd no longer knows counts as revoked. Rejects when etcd cannot
   * be reached (the lease then expires within its TTL).
   */
  async revoke(): Promise<void> {
    this.#stop();
    if (this.#id === undefined) return;
    await this.#revokeGranted(this.#id);
  }

  async #revokeGranted(id: string): Promise<void> {
    try {
      await this.#gateway.call('lease/revoke', { ID: id }, Date.now() + this.#callTimeout);
    } catch (err) {
      if (!(err instanceof EtcdCallError && err.grpcCode === GRPC_NOT_FOUND)) throw err;
    }
  }

  #granted(what: string): string {
    if (this.#id === undefined) throw new SrvlinkError('ERR_LEASE_LOST', `cannot ${what} under a lease not granted`);
    return this.#id;
  }

  #schedule(): void {
    if (this.#done) return;
    this.#timer = setTimeout(() => void this.#keepalive(), (this.#ttl * 1000) / 3);
  }

  async #keepalive(): Promise<void> {
    const id = this.#granted('renew');
    try {
      // No keepalive outlives the next one's turn.
      const answer = await this.#gateway.call<LeaseAnswer>('lease/keepalive', { ID: id }, Date.now() + Math.min(this.#callTimeout, (this.#ttl * 1000) / 3));
      if (this.#done) return;
      // etcd answers a keepalive of a lease it does not know with a TTL of 0 (left out of the JSON).
      if (answer.TTL === undefined || Number(answer.TTL) <= 0) {
        this.#lose(`etcd no longer knows lease ${id}: it expired or was revoked`);
        return;
      }
      this.#renewed = Date.now();
      this.emit('keepaliveSucceeded');
    } catch (err) {
      if (this.#done) return;
      if (err instanceof EtcdCallError && err.grpcCode === GRPC_NOT_FOUND) {
        this.#lose(`etcd no longer knows lease ${id}: ${errorMessage(err)}`);
        return;
      }
      this.emit('keepaliveFailed', err instanceof Error ? err : new Error(String(err)));
      // Not renewed for twice its TTL: etcd has let it expire by now.
      if (Date.now() - this.#renewed > 2 * 1000 * this.#ttl) {
        this.#lose(`lease ${id} could not be renewed for ${2 * this.#ttl} s: ${errorMessage(err)}`);
        return;
      }
    }
    this.#schedule();
  }

  #lose(message: string): void {
    this.#stop();
    this.emit('lost', new SrvlinkError('ERR_LEASE_LOST', message));
  }

  #stop(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
