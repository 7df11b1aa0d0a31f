import { describe, expect, it } from 'vitest';
import { findZoneEntries, type FindOptions } from '../../src/skydns/find-zone-entries.js';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';

const ENV1 = '/skydns/local/skydns/env1';
const store = MemoryZoneStore.fromValues({
  [`${ENV1}/_tcp/_zk/zk1`]: '{"host":"10.0.0.11","port":1}',
  [`${ENV1}/_tcp/_zk/zk2`]: '{"host":"10.0.0.12","port":2}',
  [`${ENV1}/_tcp/_web/w1`]: '{"host":"10.0.1.1","port":80}',
  [`${ENV1}/_udp/_zk/u1`]: '{"host":"10.0.2.1","port":3}',
  [`${ENV1}/deep/a/b`]: '{"host":"10.0.3.1"}',
  // A key with data and a subtree below it: the subtree answers.
  [`${ENV1}/both`]: '{"host":"10.0.4.0"}',
  [`${ENV1}/both/x`]: '{"host":"10.0.4.1"}',
  // TXT only: counted for existence, usable for TXT alone.
  [`${ENV1}/txt`]: '{"text":"hello"}',
  // Groups: the shortest key's group wins, ungrouped records stay.
  [`${ENV1}/g/a`]: '{"host":"10.0.5.1","group":"blue"}',
  [`${ENV1}/g/b`]: '{"host":"10.0.5.2","group":"red"}',
  [`${ENV1}/g/c`]: '{"host":"10.0.5.3"}',
  [`${ENV1}/h/x`]: '{"host":"10.0.6.1","group":"blue"}',
  [`${ENV1}/h/y/z`]: '{"host":"10.0.6.2","group":"red"}',
  [`${ENV1}/h/y/w`]: '{"host":"10.0.6.3"}',
});
const zone = { store, prefix: '/skydns' };
const SUBTREE: FindOptions = { exact: false, txt: false };

/** The entries found, as the last labels of their keys below env1. */
function found(name: string, options: FindOptions = SUBTREE): { exists: boolean; keys: string[] } {
  const result = findZoneEntries(zone, name, options);
  return { exists: result.exists, keys: result.entries.map((entry) => entry.key.slice(ENV1.length + 1)).sort() };
}

describe('findZoneEntries', () => {
  it.each<[string, string, FindOptions, boolean, string[]]>([
    ['a service: its subtree', '_zk._tcp.env1.skydns.local', SUBTREE, true, ['_tcp/_zk/zk1', '_tcp/_zk/zk2']],
    ['case and a trailing dot do not matter', '_ZK._tcp.Env1.skydns.local.', SUBTREE, true, ['_tcp/_zk/zk1', '_tcp/_zk/zk2']],
    ['one instance: its own key', 'zk1._zk._tcp.env1.skydns.local', SUBTREE, true, ['_tcp/_zk/zk1']],
    ['a key with a subtree: the subtree, not the key', 'both.env1.skydns.local', SUBTREE, true, ['both/x']],
    ['exact: the key alone', 'both.env1.skydns.local', { exact: true, txt: false }, true, ['both']],
    ['exact with only a subtree: exists, nothing answers', 'deep.env1.skydns.local', { exact: true, txt: false }, true, []],
    ['an empty non-terminal: exists through what is below', 'a.deep.env1.skydns.local', SUBTREE, true, ['deep/a/b']],
    ['nothing there', 'nope.env1.skydns.local', SUBTREE, false, []],
    ['a TXT-only record, asked for an address: exists, unusable', 'txt.env1.skydns.local', SUBTREE, true, []],
    ['a TXT-only record, asked for TXT', 'txt.env1.skydns.local', { exact: false, txt: true }, true, ['txt']],
    ['* for the protocol', '_zk.*.env1.skydns.local', SUBTREE, true, ['_tcp/_zk/zk1', '_tcp/_zk/zk2', '_udp/_zk/u1']],
    ['any for the service', 'any._tcp.env1.skydns.local', SUBTREE, true, ['_tcp/_web/w1', '_tcp/_zk/zk1', '_tcp/_zk/zk2']],
    ['* for the instance: exact keeps the keys at its depth', '*._zk._tcp.env1.skydns.local', { exact: true, txt: false }, true, ['_tcp/_zk/zk1', '_tcp/_zk/zk2']],
    ['a wildcard nothing matches', '*._none._tcp.env1.skydns.local', SUBTREE, false, []],
    ['two groups at the shortest depth: no grouping', 'g.env1.skydns.local', SUBTREE, true, ['g/a', 'g/b', 'g/c']],
    ['the shortest key sets the group; ungrouped ones stay', 'h.env1.skydns.local', SUBTREE, true, ['h/x', 'h/y/w']],
  ])('%s', (_what, name, options, exists, keys) => {
    expect(found(name, options)).toEqual({ exists, keys });
  });
});
