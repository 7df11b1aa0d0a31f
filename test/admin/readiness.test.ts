import { describe, expect, it } from 'vitest';
import type { AdminSnapshot } from '../../src/admin/admin-source.js';
import { readiness } from '../../src/admin/readiness.js';
import { fullSnapshot, mappingSnapshot } from './snapshot-fixtures.js';

const ZK = '_zookeeper._tcp.env1.skydns.local.';
const ready = (): AdminSnapshot => fullSnapshot([mappingSnapshot(ZK, [])]);

describe('readiness', () => {
  it('is ready when everything is in place', () => {
    expect(readiness(ready())).toEqual({ ready: true, missing: [] });
  });

  it.each<[string, (s: AdminSnapshot) => AdminSnapshot, string]>([
    ['a listener not bound', (s) => ({ ...s, mappings: [{ ...(s.mappings[0] as AdminSnapshot['mappings'][number]), bound: false }] }), `listener "127.0.0.1:2181" for "${ZK}" is not bound`],
    [
      'a mapping without a usable set',
      (s) => ({ ...s, mappings: [mappingSnapshot(ZK, [], { set: { status: 'none', usable: false, stale: false, error: 'no answer yet', refreshes: 0, refreshFailures: 0 } })] }),
      `mapping "127.0.0.1:2181=${ZK}" has no usable backend set: no answer yet`,
    ],
    ['a stub that does not answer', (s) => ({ ...s, stub: { ...(s.stub as NonNullable<AdminSnapshot['stub']>), answering: false } }), 'dns stub "127.0.0.1:53" does not answer'],
    ['a zone not read yet', (s) => ({ ...s, zone: { ...(s.zone as NonNullable<AdminSnapshot['zone']>), loaded: false } }), 'the zone has not been read from etcd yet'],
    [
      'a registration not in place',
      (s) => ({ ...s, registrations: [{ key: '/skydns/x', state: 'waiting-for-etcd', renewals: 0 }] }),
      'registration "/skydns/x" is waiting-for-etcd',
    ],
    ['a dns listener not bound', (s) => ({ ...s, dnsListeners: [{ ...(s.dnsListeners[0] as AdminSnapshot['dnsListeners'][number]), bound: false }] }), 'dns stub "127.0.0.1:53" is not bound'],
  ])('is not ready with %s, and says so', (_what, change, missing) => {
    expect(readiness(change(ready()))).toEqual({ ready: false, missing: [missing] });
  });
});
