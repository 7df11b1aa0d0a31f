import { formatHostPort } from '../core/host-port.js';
import { backendName, type Backend } from './backend-source.js';

/** Backends listed per kind of change in a log line; the counts are always whole. */
export const MAX_LISTED_CHANGES = 10;

/** What changed between two backend sets: counts, and the first few of each kind described. */
export interface BackendSetDiff {
  added: number;
  removed: number;
  /** Same instance (target and port), another priority, weight or addresses. */
  changed: number;
  /** At most `MAX_LISTED_CHANGES` of each, in the order of the sets. */
  addedBackends: string[];
  removedBackends: string[];
  changedBackends: string[];
}

/**
 * Compare two backend sets by instance: the SRV target and port name one
 * backend, so a new weight or priority (a re-registration, a drain) is one
 * `changed` backend, not one removed and one added. The descriptions name the
 * instance and every address it is dialed at (`host:port`, the key ejections
 * and metrics use), then priority and weight:
 * `zk1._zookeeper._tcp.env1.skydns.local 10.0.0.11:31001 p10 w100`, and for a
 * change `… p10 w100 → 10.0.0.11:31001 p10 w50`. Linear in the sizes; a set of
 * 10,000 instances gives a line of bounded length.
 */
export function diffBackendSets(before: readonly Backend[], after: readonly Backend[]): BackendSetDiff {
  const diff: BackendSetDiff = { added: 0, removed: 0, changed: 0, addedBackends: [], removedBackends: [], changedBackends: [] };
  const list = (into: string[], text: string): void => void (into.length < MAX_LISTED_CHANGES && into.push(text));
  const previous = byInstance(before);
  for (const [instance, now] of byInstance(after)) {
    const was = previous.get(instance) ?? [];
    previous.delete(instance);
    // The same record in both sets (a target may be listed twice, with other priorities) is no change.
    const left = was.filter((backend) => {
      const same = now.findIndex((other) => describeBackend(other) === describeBackend(backend));
      if (same === -1) return true;
      now.splice(same, 1);
      return false;
    });
    now.forEach((backend, i) => {
      const old = left[i];
      if (old === undefined) {
        diff.added++;
        list(diff.addedBackends, describeBackend(backend));
      } else {
        diff.changed++;
        list(diff.changedBackends, `${describeBackend(old)} → ${describeEndpoint(backend)}`);
      }
    });
    for (const old of left.slice(now.length)) {
      diff.removed++;
      list(diff.removedBackends, describeBackend(old));
    }
  }
  for (const gone of previous.values()) {
    for (const old of gone) {
      diff.removed++;
      list(diff.removedBackends, describeBackend(old));
    }
  }
  return diff;
}

/** One backend as logs show it: `instance host:port… pN wN`. */
export function describeBackend(backend: Backend): string {
  return `${backendName(backend)} ${describeEndpoint(backend)}`;
}

/** Addresses (sorted), priority and weight: what may change while the instance stays. */
function describeEndpoint(backend: Backend): string {
  const addresses = [...backend.addresses].sort().map((host) => formatHostPort({ host, port: backend.port }));
  return `${addresses.join(' ')} p${backend.priority} w${backend.weight}`;
}

/** Backends by instance (target and port), in set order. */
function byInstance(backends: readonly Backend[]): Map<string, Backend[]> {
  const groups = new Map<string, Backend[]>();
  for (const backend of backends) {
    const key = `${backend.target.toLowerCase()} ${backend.port}`;
    const group = groups.get(key);
    if (group) group.push(backend);
    else groups.set(key, [backend]);
  }
  return groups;
}
