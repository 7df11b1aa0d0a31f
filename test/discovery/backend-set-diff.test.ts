import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/discovery/backend-source.js';
import { MAX_LISTED_CHANGES, diffBackendSets } from '../../src/discovery/backend-set-diff.js';

const backend = (target: string, port: number, addresses: string[], priority = 10, weight = 10): Backend => ({ target, port, priority, weight, addresses });
const zk1 = backend('zk1._zk._tcp.env1.skydns.local.', 31001, ['10.0.0.11']);
const zk2 = backend('zk2._zk._tcp.env1.skydns.local.', 31002, ['10.0.0.12', '2001:db8::12']);

describe('diffBackendSets', () => {
  it('names added and removed backends by instance and every address:port they are dialed at', () => {
    expect(diffBackendSets([zk1], [zk2])).toEqual({
      added: 1,
      removed: 1,
      changed: 0,
      addedBackends: ['zk2._zk._tcp.env1.skydns.local 10.0.0.12:31002 [2001:db8::12]:31002 p10 w10'],
      removedBackends: ['zk1._zk._tcp.env1.skydns.local 10.0.0.11:31001 p10 w10'],
      changedBackends: [],
    });
  });

  it('a new weight, priority or address of the same instance is one change, not a removal and an addition', () => {
    const reweighted = { ...zk1, weight: 50 };
    const moved = { ...zk2, addresses: ['10.0.0.13'], priority: 20 };
    expect(diffBackendSets([zk1, zk2], [reweighted, moved])).toEqual({
      added: 0,
      removed: 0,
      changed: 2,
      addedBackends: [],
      removedBackends: [],
      changedBackends: [
        'zk1._zk._tcp.env1.skydns.local 10.0.0.11:31001 p10 w10 → 10.0.0.11:31001 p10 w50',
        'zk2._zk._tcp.env1.skydns.local 10.0.0.12:31002 [2001:db8::12]:31002 p10 w10 → 10.0.0.13:31002 p20 w10',
      ],
    });
  });

  it('an unchanged set is no change; the same instance on another port is another backend', () => {
    expect(diffBackendSets([zk1, zk2], [zk2, zk1])).toMatchObject({ added: 0, removed: 0, changed: 0 });
    expect(diffBackendSets([zk1], [zk1, { ...zk1, port: 31009 }])).toMatchObject({ added: 1, removed: 0, changed: 0 });
  });

  it('an instance listed twice keeps its unchanged record and changes only the other', () => {
    const twice = [zk1, { ...zk1, priority: 20 }];
    expect(diffBackendSets(twice, [zk1, { ...zk1, priority: 30 }])).toMatchObject({ added: 0, removed: 0, changed: 1 });
    expect(diffBackendSets(twice, [zk1])).toMatchObject({ added: 0, removed: 1, changed: 0, removedBackends: ['zk1._zk._tcp.env1.skydns.local 10.0.0.11:31001 p20 w10'] });
  });

  it('10,000 instances: whole counts, at most a few listed of each kind', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => backend(`i${i}._big._tcp.env1.skydns.local.`, 20_000 + (i % 40_000), [`10.3.${i >> 8}.${i & 0xff}`]));
    const first = diffBackendSets([], many);
    expect(first).toMatchObject({ added: 10_000, removed: 0, changed: 0 });
    expect(first.addedBackends).toHaveLength(MAX_LISTED_CHANGES);
    const next = many.slice(5000).map((b, i) => (i < 2000 ? { ...b, weight: 99 } : b));
    const second = diffBackendSets(many, next);
    expect(second).toMatchObject({ added: 0, removed: 5000, changed: 2000 });
    expect(second.removedBackends).toHaveLength(MAX_LISTED_CHANGES);
    expect(second.changedBackends).toHaveLength(MAX_LISTED_CHANGES);
    expect(JSON.stringify(second).length).toBeLessThan(4096);
  });
});
