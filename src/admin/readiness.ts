import type { AdminSnapshot } from './admin-source.js';

/** The verdict of `/readyz`: ready, or what is missing, one sentence each. */
export interface Readiness {
  ready: boolean;
  missing: string[];
}

/**
 * Ready means every listener is bound, every mapping has a usable backend
 * set, the stub answers, the zone (if any) has been read and every
 * registration is in place. Pure: the snapshot says it all.
 */
export function readiness(snapshot: AdminSnapshot): Readiness {
  const missing: string[] = [];
  for (const mapping of snapshot.mappings) {
    if (!mapping.bound) missing.push(`listener "${mapping.address}" for "${mapping.srvName}" is not bound`);
    else if (!mapping.set.usable) missing.push(`mapping "${mapping.address}=${mapping.srvName}" has no usable backend set: ${mapping.set.error ?? mapping.set.status}`);
  }
  for (const listener of snapshot.dnsListeners) {
    if (!listener.bound) missing.push(`dns ${listener.name} "${listener.address}" is not bound`);
  }
  if (snapshot.stub && !snapshot.stub.answering) missing.push(`dns stub "${snapshot.stub.address}" does not answer`);
  if (snapshot.zone && !snapshot.zone.loaded) missing.push('the zone has not been read from etcd yet');
  for (const registration of snapshot.registrations) {
    if (registration.state !== 'registered') missing.push(`registration "${registration.key}" is ${registration.state}`);
  }
  return { ready: missing.length === 0, missing };
}
