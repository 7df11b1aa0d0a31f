import { describe, expect, it } from 'vitest';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';
import { SrvlinkError } from '../../src/core/errors.js';

const keys = (entries: readonly { key: string }[]): string[] => entries.map((entry) => entry.key);

describe('MemoryZoneStore', () => {
  it('returns a subtree in key order, the prefix taken literally', () => {
    const store = MemoryZoneStore.fromValues([
      ['/skydns/local/b/2', '{"host":"10.0.0.2"}'],
      ['/skydns/local/a', '{"host":"10.0.0.1"}'],
      ['/skydns/local/b/1', '{"host":"10.0.0.3"}'],
      ['/skydns/local/bb', '{"host":"10.0.0.4"}'],
    ]);
    expect(keys(store.subtree('/skydns/local/b/'))).toEqual(['/skydns/local/b/1', '/skydns/local/b/2']);
    expect(keys(store.subtree('/skydns/local/b'))).toEqual(['/skydns/local/b/1', '/skydns/local/b/2', '/skydns/local/bb']);
    expect(keys(store.subtree(''))).toHaveLength(4);
    expect(store.subtree('/nothing/')).toEqual([]);
    expect(store.get('/skydns/local/a')?.record.host).toBe('10.0.0.1');
    expect(store.get('/skydns/local')).toBeUndefined();
    expect(store.size).toBe(4);
  });

  it('takes decoded objects as a records file holds them', () => {
    const store = MemoryZoneStore.fromValues({ '/skydns/a': { host: '10.0.0.1', port: 80 } });
    expect(store.get('/skydns/a')?.record.port).toBe(80);
  });

  it('counts malformed values and tells which they are', () => {
    const store = MemoryZoneStore.fromValues({ '/skydns/b': 'nope', '/skydns/a': '{"host":"10.0.0.1"}', '/skydns/c': '{}' });
    expect(store.malformed).toBe(2);
    expect(store.size).toBe(1);
    expect(store.malformedValues().map(({ key, error }) => [key, error.code])).toEqual([
      ['/skydns/b', 'ERR_SKYDNS_RECORD'],
      ['/skydns/c', 'ERR_SKYDNS_RECORD'],
    ]);
  });

  it('keeps the index and the malformed count current through put and delete (an etcd watch)', () => {
    const store = new MemoryZoneStore();
    expect(store.put('/skydns/b', '{"host":"10.0.0.2"}')).toBeUndefined();
    expect(store.put('/skydns/a', '{"host":"10.0.0.1"}', 1234)).toBeUndefined();
    expect(keys(store.subtree('/skydns/'))).toEqual(['/skydns/a', '/skydns/b']);
    expect(store.get('/skydns/a')?.expiresAt).toBe(1234);

    // A broken update removes the record and counts the value.
    expect(store.put('/skydns/a', '{broken')?.code).toBe('ERR_SKYDNS_RECORD');
    expect(keys(store.subtree('/skydns/'))).toEqual(['/skydns/b']);
    expect(store.malformed).toBe(1);

    // A good update uncounts it.
    store.put('/skydns/a', '{"host":"10.0.0.9"}');
    expect(store.malformed).toBe(0);
    expect(store.get('/skydns/a')?.record.host).toBe('10.0.0.9');
    expect(store.get('/skydns/a')?.expiresAt).toBeUndefined();

    // Replacing keeps one entry.
    store.put('/skydns/a', '{"host":"10.0.0.8"}');
    expect(keys(store.subtree(''))).toEqual(['/skydns/a', '/skydns/b']);

    expect(store.delete('/skydns/a')).toBe(true);
    expect(store.delete('/skydns/a')).toBe(false);
    store.put('/skydns/c', 'null');
    expect(store.delete('/skydns/c')).toBe(true);
    expect(store.malformed).toBe(0);
    expect(keys(store.subtree(''))).toEqual(['/skydns/b']);
  });
});

describe('MemoryZoneStore.version', () => {
  it('grows with every change of what the store holds, and only then', () => {
    const store = MemoryZoneStore.fromValues({ '/skydns/a': '{"host":"10.0.0.1"}' });
    const steps: [string, () => unknown, boolean][] = [
      ['put', () => store.put('/skydns/b', '{"host":"10.0.0.2"}'), true],
      ['the same value again', () => store.put('/skydns/b', '{"host":"10.0.0.2"}'), true],
      ['a lease end', () => store.put('/skydns/b', '{"host":"10.0.0.2"}', 1234), true],
      ['a malformed value', () => store.put('/skydns/b', '{broken'), true],
      ['deleting the malformed key', () => store.delete('/skydns/b'), true],
      ['deleting a missing key', () => store.delete('/skydns/b'), false],
      ['a rejected key', () => store.reject('/skydns/a', new SrvlinkError('ERR_SKYDNS_RECORD', 'not text')), true],
      ['reading', () => [store.get('/skydns/a'), store.subtree('/')], false],
    ];
    for (const [what, step, changes] of steps) {
      const version = store.version;
      step();
      if (changes) expect(store.version, what).toBeGreaterThan(version);
      else expect(store.version, what).toBe(version);
    }
  });
});
