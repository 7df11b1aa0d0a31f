import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SrvlinkError } from '../../src/core/errors.js';
import { keyToName, nameToKey } from '../../src/skydns-model/key-path.js';

describe('nameToKey', () => {
  it.each([
    ['_zookeeper._tcp.env1.skydns.local.', undefined, '/skydns/local/skydns/env1/_tcp/_zookeeper'],
    ['_zookeeper._tcp.env1.skydns.local', undefined, '/skydns/local/skydns/env1/_tcp/_zookeeper'],
    ['_ZooKeeper._TCP.Env1.SkyDNS.Local.', undefined, '/skydns/local/skydns/env1/_tcp/_zookeeper'],
    ['skydns.local.', '/skydns', '/skydns/local/skydns'],
    ['skydns.local.', 'skydns', '/skydns/local/skydns'],
    ['skydns.local.', '/skydns/', '/skydns/local/skydns'],
    ['skydns.local.', '/coredns/zones/', '/coredns/zones/local/skydns'],
    ['skydns.local.', '/', '/local/skydns'],
    ['*.env1.skydns.local.', undefined, '/skydns/local/skydns/env1/*'],
    ['.', undefined, '/skydns'],
    ['', undefined, '/skydns'],
    ['.', '/', '/'],
  ])('%s under %s → %s', (name, prefix, key) => {
    expect(nameToKey(name, prefix)).toBe(key);
  });
});

describe('keyToName', () => {
  it.each([
    ['/skydns/local/skydns/env1/_tcp/_zookeeper/zk1', undefined, 'zk1._zookeeper._tcp.env1.skydns.local.'],
    ['/skydns/local/skydns/env1/_tcp/_zookeeper/', undefined, '_zookeeper._tcp.env1.skydns.local.'],
    ['/skydns/local/skydns', 'skydns', 'skydns.local.'],
    ['/skydns/local/skydns', '/skydns/', 'skydns.local.'],
    ['/coredns/zones/local/skydns/a', '/coredns/zones', 'a.skydns.local.'],
    ['/local/skydns/a', '/', 'a.skydns.local.'],
    ['/skydns', undefined, '.'],
  ])('%s under %s → %s', (key, prefix, name) => {
    expect(keyToName(key, prefix)).toBe(name);
  });

  it.each([
    ['/other/local/skydns', '/skydns'],
    ['/skydnsx/local', '/skydns'],
  ])('refuses %s, which is not under %s', (key, prefix) => {
    const read = (): string => keyToName(key, prefix);
    expect(read).toThrow(SrvlinkError);
    expect(read).toThrow(`cannot read key "${key}" as a name: it is not under prefix "${prefix}"`);
  });

  it('inverts nameToKey for any name and prefix', () => {
    const label = fc.stringMatching(/^[a-z0-9_-]{1,20}$/);
    const name = fc.array(label, { minLength: 1, maxLength: 8 }).map((labels) => labels.join('.'));
    const prefix = fc.constantFrom('/skydns', 'skydns/', '/a/b', '/');
    fc.assert(
      fc.property(name, prefix, (n, p) => {
        expect(keyToName(nameToKey(n, p), p)).toBe(`${n}.`);
      }),
    );
  });
});
