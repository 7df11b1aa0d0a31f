import { abortable, deferred } from '../core/abort.js';
import type { Resolver } from '../discovery/lookup-srv.js';
import type { DnsHandler } from '../dns/handler.js';
import type { EtcdZoneStore } from './etcd-zone-store.js';
import { createZoneHandler } from './zone-handler.js';
import type { ZoneEntry, ZoneStore } from './zone-store.js';

/**
 * The etcd zone once it has loaded: a `ZoneStore` that is empty (and says
 * why it cannot vouch for that) until etcd first answers, so listeners and
 * the stub need not wait for etcd at start-up.
 */
export class LateZone implements ZoneStore {
  readonly prefix: string;
  #store: EtcdZoneStore | undefined;
  /** Resolved once etcd has answered the first read, or failed it: until then, queries wait. */
  readonly #settled = deferred();

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  attach(store: EtcdZoneStore): void {
    this.#store = store;
    this.#settled.resolve();
  }

  /** An attempt to read the zone failed: queries stop waiting and fail (unavailable) until it is read. */
  failed(): void {
    this.#settled.resolve();
  }

  /**
   * `resolver`, whose queries wait for the first read of the zone (or its
   * first failure), so that a connection at start-up gets backends instead of
   * an answer from an empty zone.
   */
  gate(resolver: Resolver): Resolver {
    return {
      query: async (name, type, options) => {
        await (options?.signal ? abortable(this.#settled.promise, options.signal) : this.#settled.promise);
        return resolver.query(name, type, options);
      },
    };
  }

  get unavailable(): string | undefined {
    return this.#store ? this.#store.unavailable : 'the zone has not been read from etcd yet';
  }

  subtree(keyPrefix: string): readonly ZoneEntry[] {
    return this.#store?.subtree(keyPrefix) ?? [];
  }

  get(key: string): ZoneEntry | undefined {
    return this.#store?.get(key);
  }

  get malformed(): number {
    return this.#store?.malformed ?? 0;
  }

  /** Answers the cluster domain from the index once loaded; before that, passes names on (to the cluster DNS, if any). */
  handler(clusterDomain: string): DnsHandler {
    const zoneHandler = createZoneHandler({ zones: [clusterDomain], prefix: this.prefix, store: this });
    return {
      name: 'etcd-zone',
      handle: (request, next) => (this.#store ? zoneHandler.handle(request, next) : next()),
    };
  }

  async close(): Promise<void> {
    await this.#store?.close();
  }
}
