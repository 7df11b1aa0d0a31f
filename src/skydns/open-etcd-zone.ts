import type { Etcd3 } from 'etcd3';
import { abortableSleep } from '../core/abort.js';
import { backoffDelay } from '../core/backoff.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { LogThrottle } from '../core/log-throttle.js';
import { EtcdZoneStore } from './etcd-zone-store.js';

/** While etcd does not answer at start, a reminder this often, ms. */
const ZONE_WARN_EVERY = 30_000;

/**
 * Read the SkyDNS zone from etcd, retrying until etcd answers (a cluster DNS
 * may start before etcd does). Resolves with the loaded store, or undefined
 * when `stop` aborts first. `onFailure` hears of every failed attempt.
 */
export async function openEtcdZone(client: Etcd3, prefix: string, log: Logger, stop: AbortSignal, onFailure?: (err: unknown) => void): Promise<EtcdZoneStore | undefined> {
  // The first failure is a warning, then a reminder every half minute with the count in between.
  const warnings = new LogThrottle({ interval: ZONE_WARN_EVERY });
  for (let attempt = 1; !stop.aborted; attempt++) {
    const store = new EtcdZoneStore({ client, prefix, logger: log.child({ component: 'etcd-zone' }) });
    try {
      await store.start();
      return store;
    } catch (err) {
      await store.close();
      onFailure?.(err);
      const suppressed = warnings.take();
      if (suppressed !== undefined) log.warn('cannot read the zone from etcd yet, retrying', { prefix, attempt, error: errorMessage(err), ...(suppressed > 0 ? { suppressed } : {}) });
      await abortableSleep(backoffDelay(attempt, { min: 250, max: 5000 }), stop);
    }
  }
  return undefined;
}
