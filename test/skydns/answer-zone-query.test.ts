import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rcode, type DnsRecord, type RecordType } from '../../src/dns/codec.js';
import { answerZoneQuery, type ZoneAnswer } from '../../src/skydns/answer-zone-query.js';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';
import type { ZoneStore } from '../../src/skydns/zone-store.js';
import { formatRecord } from './format-record.js';

const NOW = Date.UTC(2024, 0, 1);
const SERIAL = NOW / 1000;
const SOA = `skydns.local 30 SOA ns.dns.skydns.local hostmaster.skydns.local ${SERIAL} 7200 1800 86400 30`;
const ZK = '/skydns/local/skydns/env1/_tcp/_zookeeper';

/** THE worked example of the issue. */
const WORKED_EXAMPLE = {
  [`${ZK}/zk1`]: '{"host":"10.0.0.11","port":31001}',
  [`${ZK}/zk2`]: '{"host":"10.0.0.12","port":31002,"weight":50}',
  [`${ZK}/zk3`]: '{"host":"10.0.0.13","port":31003,"priority":20}',
};

const FIXTURE = MemoryZoneStore.fromValues({
  ...WORKED_EXAMPLE,
  '/skydns/local/skydns/env2/_tcp/_zookeeper/zk9': '{"host":"10.0.2.9","port":2181}',
  // Same IP twice, and one IPv6.
  '/skydns/local/skydns/env1/_tcp/_web/w1': '{"host":"10.0.1.1","port":80}',
  '/skydns/local/skydns/env1/_tcp/_web/w2': '{"host":"10.0.1.1","port":8080}',
  '/skydns/local/skydns/env1/_tcp/_web/w3': '{"host":"2001:db8::1","port":80}',
  // targetstrip 1: both targets become the service name itself.
  '/skydns/local/skydns/env1/_tcp/_strip/s1': '{"host":"10.0.3.1","port":1,"targetstrip":1}',
  '/skydns/local/skydns/env1/_tcp/_strip/s2': '{"host":"10.0.3.2","port":2,"targetstrip":1}',
  // targetstrip beyond the name's length leaves it alone (CoreDNS).
  '/skydns/local/skydns/env1/_tcp/_over/o1': '{"host":"10.0.3.3","port":3,"targetstrip":20}',
  // Name hosts: one inside the zone, one outside.
  '/skydns/local/skydns/env1/_tcp/_db/db1': '{"host":"db.env1.skydns.local","port":5432}',
  '/skydns/local/skydns/env1/_tcp/_db/db2': '{"host":"db.example.com.","port":5432,"priority":20}',
  '/skydns/local/skydns/env1/db/a': '{"host":"10.0.4.1"}',
  '/skydns/local/skydns/env1/db/b': '{"host":"10.0.4.2"}',
  '/skydns/local/skydns/env1/db6': '{"host":"2001:db8::4"}',
  // CNAMEs.
  '/skydns/local/skydns/env1/alias': '{"host":"db.env1.skydns.local"}',
  '/skydns/local/skydns/env1/alias2': '{"host":"alias.env1.skydns.local"}',
  '/skydns/local/skydns/env1/ext': '{"host":"www.example.com"}',
  '/skydns/local/skydns/env1/dangling': '{"host":"nothing.env1.skydns.local"}',
  '/skydns/local/skydns/loop/a': '{"host":"b.loop.skydns.local"}',
  '/skydns/local/skydns/loop/b': '{"host":"a.loop.skydns.local"}',
  '/skydns/local/skydns/self/x': '{"host":"self.skydns.local"}',
  // TXT.
  '/skydns/local/skydns/env1/txt': '{"text":"hello world"}',
  '/skydns/local/skydns/env1/txtalias': '{"host":"txt.env1.skydns.local"}',
  '/skydns/local/skydns/long': JSON.stringify({ text: 'x'.repeat(300) }),
  // MX.
  '/skydns/local/skydns/mail/mx1': '{"host":"10.0.5.1","mail":true,"priority":5}',
  '/skydns/local/skydns/mail/mx2': '{"host":"db.env1.skydns.local","mail":true}',
  '/skydns/local/skydns/mail/web': '{"host":"10.0.5.9","port":80}',
  // TTL.
  '/skydns/local/skydns/ttl/short': '{"host":"10.0.6.1","ttl":60}',
  // Apex and name servers (CoreDNS apex.dns / ns.dns).
  '/skydns/local/skydns/dns/apex/x': '{"host":"10.0.0.80"}',
  '/skydns/local/skydns/dns/ns/ns1': '{"host":"10.0.0.53"}',
  // Groups (CoreDNS plugin/etcd group_test.go).
  '/skydns/local/skydns/dom/a': '{"host":"127.0.0.1","group":"g1"}',
  '/skydns/local/skydns/dom/sub/b': '{"host":"127.0.0.2","group":"g1"}',
  '/skydns/local/skydns/dom2/a': '{"host":"127.0.0.1","group":"g1"}',
  '/skydns/local/skydns/dom2/sub/b': '{"host":"127.0.0.2"}',
  '/skydns/local/skydns/dom1/a': '{"host":"127.0.0.1","group":"g1"}',
  '/skydns/local/skydns/dom1/sub/b': '{"host":"127.0.0.2","group":"g2"}',
  // The exact key is ignored when a subtree exists (CoreDNS get).
  '/skydns/local/skydns/both': '{"host":"10.0.7.1"}',
  '/skydns/local/skydns/both/child': '{"host":"10.0.7.2"}',
});

function ask(name: string, type: RecordType, store: ZoneStore = FIXTURE, now = NOW): ZoneAnswer {
  return answerZoneQuery({ name, type }, { zone: 'skydns.local.', store, now });
}

function show(answer: ZoneAnswer): { rcode: number; aa: boolean; answers: string[]; authorities: string[]; additionals: string[] } {
  const f = (records: DnsRecord[]): string[] => records.map(formatRecord);
  return {
    rcode: answer.rcode,
    aa: answer.aa,
    answers: f(answer.answers),
    authorities: f(answer.authorities),
    additionals: f(answer.additionals),
  };
}

describe('answerZoneQuery', () => {
  it('answers THE worked example', () => {
    const store = MemoryZoneStore.fromValues(WORKED_EXAMPLE);
    expect(show(ask('_zookeeper._tcp.env1.skydns.local.', 'SRV', store))).toEqual({
      rcode: Rcode.NOERROR,
      aa: true,
      answers: [
        '_zookeeper._tcp.env1.skydns.local 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local',
        '_zookeeper._tcp.env1.skydns.local 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local',
        '_zookeeper._tcp.env1.skydns.local 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local',
      ],
      authorities: [],
      additionals: [
        'zk1._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.11',
        'zk2._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.12',
        'zk3._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.13',
      ],
    });
  });

  it.each<[string, string, RecordType, string[], string[]]>([
    [
      'an instance key answers for itself',
      'zk2._zookeeper._tcp.env1.skydns.local',
      'SRV',
      ['zk2._zookeeper._tcp.env1.skydns.local 300 SRV 10 100 31002 zk2._zookeeper._tcp.env1.skydns.local'],
      ['zk2._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.12'],
    ],
    [
      'names match without case, owners keep the case asked',
      '_ZooKeeper._TCP.Env1.SkyDNS.Local',
      'SRV',
      [
        '_ZooKeeper._TCP.Env1.SkyDNS.Local 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local',
        '_ZooKeeper._TCP.Env1.SkyDNS.Local 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local',
        '_ZooKeeper._TCP.Env1.SkyDNS.Local 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local',
      ],
      [
        'zk1._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.11',
        'zk2._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.12',
        'zk3._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.13',
      ],
    ],
    [
      '* as a label is a wildcard (deeper keys included)',
      '_zookeeper._tcp.*.skydns.local',
      'SRV',
      [
        '_zookeeper._tcp.*.skydns.local 300 SRV 10 40 31001 zk1._zookeeper._tcp.env1.skydns.local',
        '_zookeeper._tcp.*.skydns.local 300 SRV 10 20 31002 zk2._zookeeper._tcp.env1.skydns.local',
        '_zookeeper._tcp.*.skydns.local 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local',
        '_zookeeper._tcp.*.skydns.local 300 SRV 10 40 2181 zk9._zookeeper._tcp.env2.skydns.local',
      ],
      [
        'zk1._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.11',
        'zk2._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.12',
        'zk3._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.13',
        'zk9._zookeeper._tcp.env2.skydns.local 300 A 10.0.2.9',
      ],
    ],
    [
      'any as a label is a wildcard',
      'zk9.*.any.env2.skydns.local',
      'SRV',
      ['zk9.*.any.env2.skydns.local 300 SRV 10 100 2181 zk9._zookeeper._tcp.env2.skydns.local'],
      ['zk9._zookeeper._tcp.env2.skydns.local 300 A 10.0.2.9'],
    ],
    [
      'targetstrip: the target loses labels from the left, glue follows it',
      '_strip._tcp.env1.skydns.local',
      'SRV',
      [
        '_strip._tcp.env1.skydns.local 300 SRV 10 50 1 _strip._tcp.env1.skydns.local',
        '_strip._tcp.env1.skydns.local 300 SRV 10 50 2 _strip._tcp.env1.skydns.local',
      ],
      ['_strip._tcp.env1.skydns.local 300 A 10.0.3.1', '_strip._tcp.env1.skydns.local 300 A 10.0.3.2'],
    ],
    [
      'targetstrip past the whole name leaves it alone',
      '_over._tcp.env1.skydns.local',
      'SRV',
      ['_over._tcp.env1.skydns.local 300 SRV 10 100 3 o1._over._tcp.env1.skydns.local'],
      ['o1._over._tcp.env1.skydns.local 300 A 10.0.3.3'],
    ],
    [
      'name hosts are targets; in-zone ones get their addresses, out-of-zone ones nothing',
      '_db._tcp.env1.skydns.local',
      'SRV',
      [
        '_db._tcp.env1.skydns.local 300 SRV 10 100 5432 db.env1.skydns.local',
        '_db._tcp.env1.skydns.local 300 SRV 20 100 5432 db.example.com',
      ],
      ['db.env1.skydns.local 300 A 10.0.4.1', 'db.env1.skydns.local 300 A 10.0.4.2'],
    ],
    [
      'an IPv6 host gets AAAA glue',
      '_web._tcp.env1.skydns.local',
      'SRV',
      [
        '_web._tcp.env1.skydns.local 300 SRV 10 33 80 w1._web._tcp.env1.skydns.local',
        '_web._tcp.env1.skydns.local 300 SRV 10 33 8080 w2._web._tcp.env1.skydns.local',
        '_web._tcp.env1.skydns.local 300 SRV 10 33 80 w3._web._tcp.env1.skydns.local',
      ],
      [
        'w1._web._tcp.env1.skydns.local 300 A 10.0.1.1',
        'w2._web._tcp.env1.skydns.local 300 A 10.0.1.1',
        'w3._web._tcp.env1.skydns.local 300 AAAA 2001:db8::1',
      ],
    ],
    [
      'A: every IPv4 host in the subtree, once',
      '_web._tcp.env1.skydns.local',
      'A',
      ['_web._tcp.env1.skydns.local 300 A 10.0.1.1'],
      [],
    ],
    ['AAAA: every IPv6 host in the subtree', '_web._tcp.env1.skydns.local', 'AAAA', ['_web._tcp.env1.skydns.local 300 AAAA 2001:db8::1'], []],
    [
      'A for a name with records below it',
      'db.env1.skydns.local',
      'A',
      ['db.env1.skydns.local 300 A 10.0.4.1', 'db.env1.skydns.local 300 A 10.0.4.2'],
      [],
    ],
    [
      'a name host becomes a CNAME, followed inside the zone',
      'alias.env1.skydns.local',
      'A',
      [
        'alias.env1.skydns.local 300 CNAME db.env1.skydns.local',
        'db.env1.skydns.local 300 A 10.0.4.1',
        'db.env1.skydns.local 300 A 10.0.4.2',
      ],
      [],
    ],
    [
      'CNAME chains are followed',
      'alias2.env1.skydns.local',
      'A',
      [
        'alias2.env1.skydns.local 300 CNAME alias.env1.skydns.local',
        'alias.env1.skydns.local 300 CNAME db.env1.skydns.local',
        'db.env1.skydns.local 300 A 10.0.4.1',
        'db.env1.skydns.local 300 A 10.0.4.2',
      ],
      [],
    ],
    ['a CNAME out of the zone is left to the resolver', 'ext.env1.skydns.local', 'A', ['ext.env1.skydns.local 300 CNAME www.example.com'], []],
    ['a CNAME answers a CNAME question', 'alias.env1.skydns.local', 'CNAME', ['alias.env1.skydns.local 300 CNAME db.env1.skydns.local'], []],
    ['TXT from text', 'txt.env1.skydns.local', 'TXT', ['txt.env1.skydns.local 300 TXT "hello world"'], []],
    [
      'TXT through a CNAME',
      'txtalias.env1.skydns.local',
      'TXT',
      ['txtalias.env1.skydns.local 300 CNAME txt.env1.skydns.local', 'txt.env1.skydns.local 300 TXT "hello world"'],
      [],
    ],
    ['a long text is split in 255-octet strings', 'long.skydns.local', 'TXT', [`long.skydns.local 300 TXT "${'x'.repeat(255)}" "${'x'.repeat(45)}"`], []],
    [
      'MX from records with mail, priority as preference',
      'mail.skydns.local',
      'MX',
      ['mail.skydns.local 300 MX 5 mx1.mail.skydns.local', 'mail.skydns.local 300 MX 10 db.env1.skydns.local'],
      ['mx1.mail.skydns.local 300 A 10.0.5.1', 'db.env1.skydns.local 300 A 10.0.4.1', 'db.env1.skydns.local 300 A 10.0.4.2'],
    ],
    ['the record ttl is used', 'short.ttl.skydns.local', 'A', ['short.ttl.skydns.local 60 A 10.0.6.1'], []],
    ['A at the apex comes from apex.dns', 'skydns.local', 'A', ['skydns.local 300 A 10.0.0.80'], []],
    [
      'SOA at the apex',
      'SkyDNS.local.',
      'SOA',
      [`SkyDNS.local 30 SOA ns.dns.skydns.local hostmaster.skydns.local ${SERIAL} 7200 1800 86400 30`],
      [],
    ],
    ['NS at the apex from ns.dns, with glue', 'skydns.local', 'NS', ['skydns.local 300 NS ns1.ns.dns.skydns.local'], ['ns1.ns.dns.skydns.local 300 A 10.0.0.53']],
    ['group: the shortest key sets the group', 'dom.skydns.local', 'A', ['dom.skydns.local 300 A 127.0.0.1', 'dom.skydns.local 300 A 127.0.0.2'], []],
    ['group: records without a group always count', 'dom2.skydns.local', 'A', ['dom2.skydns.local 300 A 127.0.0.1', 'dom2.skydns.local 300 A 127.0.0.2'], []],
    ['group: another group below is left out', 'dom1.skydns.local', 'A', ['dom1.skydns.local 300 A 127.0.0.1'], []],
    ['the exact key counts only when nothing is below it', 'both.skydns.local', 'A', ['both.skydns.local 300 A 10.0.7.2'], []],
  ])('%s: %s %s', (_what, name, type, answers, additionals) => {
    expect(show(ask(name, type))).toEqual({ rcode: Rcode.NOERROR, aa: true, answers, authorities: [], additionals });
  });

  it.each<[string, string, RecordType, number]>([
    ['no key at all', 'nothere.env1.skydns.local', 'A', Rcode.NXDOMAIN],
    ['no key, any type', 'nothere.env1.skydns.local', 'HINFO', Rcode.NXDOMAIN],
    ['a name below a record', 'x.zk1._zookeeper._tcp.env1.skydns.local', 'SRV', Rcode.NXDOMAIN],
    ['a wildcard matching nothing', '_nothing._tcp.*.skydns.local', 'SRV', Rcode.NXDOMAIN],
    ['NS below the apex of a missing name', 'a.nothere.skydns.local', 'NS', Rcode.NXDOMAIN],
    ['SOA below the apex of a missing name', 'nothere.skydns.local', 'SOA', Rcode.NXDOMAIN],
    ['a record without text asked for TXT', 'zk1._zookeeper._tcp.env1.skydns.local', 'TXT', Rcode.NOERROR],
    ['an IPv4-only name asked for AAAA', 'zk1._zookeeper._tcp.env1.skydns.local', 'AAAA', Rcode.NOERROR],
    ['a type SkyDNS cannot hold', 'zk1._zookeeper._tcp.env1.skydns.local', 'HINFO', Rcode.NOERROR],
    ['an empty non-terminal', '_tcp.env2.skydns.local', 'TXT', Rcode.NOERROR],
    ['a text-only record asked for A', 'txt.env1.skydns.local', 'A', Rcode.NOERROR],
    ['a text-only record asked for SRV', 'txt.env1.skydns.local', 'SRV', Rcode.NOERROR],
    ['records without mail asked for MX', 'web.mail.skydns.local', 'MX', Rcode.NOERROR],
    ['an IP host asked for CNAME', 'zk1._zookeeper._tcp.env1.skydns.local', 'CNAME', Rcode.NOERROR],
    ['a CNAME question at an empty non-terminal', 'env1.skydns.local', 'CNAME', Rcode.NOERROR],
    ['a CNAME loop', 'a.loop.skydns.local', 'A', Rcode.NOERROR],
    ['a CNAME to itself', 'x.self.skydns.local', 'A', Rcode.NOERROR],
    ['a CNAME to a missing in-zone name', 'dangling.env1.skydns.local', 'A', Rcode.NOERROR],
    ['SOA below the apex', 'zk1._zookeeper._tcp.env1.skydns.local', 'SOA', Rcode.NOERROR],
    ['NS below the apex', 'zk1._zookeeper._tcp.env1.skydns.local', 'NS', Rcode.NOERROR],
  ])('%s: %s %s → negative answer with the SOA', (_what, name, type, rcode) => {
    expect(show(ask(name, type))).toEqual({ rcode, aa: true, answers: [], authorities: [SOA], additionals: [] });
  });

  it('answers NODATA, never NXDOMAIN, at the apex of an empty zone', () => {
    expect(show(ask('skydns.local', 'A', new MemoryZoneStore()))).toEqual({
      rcode: Rcode.NOERROR,
      aa: true,
      answers: [],
      authorities: [SOA],
      additionals: [],
    });
  });

  it('refuses a question outside the zone, not authoritatively', () => {
    expect(show(ask('example.com', 'A'))).toEqual({ rcode: Rcode.REFUSED, aa: false, answers: [], authorities: [], additionals: [] });
  });

  it('skips a malformed value and still serves the other records of the service', () => {
    const store = MemoryZoneStore.fromValues({
      ...WORKED_EXAMPLE,
      [`${ZK}/zk0`]: '{"host":"10.0.0.10","port":"31000"}',
      [`${ZK}/zk4`]: '{not json',
    });
    expect(store.malformed).toBe(2);
    expect(show(ask('_zookeeper._tcp.env1.skydns.local', 'SRV', store)).answers).toEqual([
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local',
    ]);
  });

  it.each([
    ['no lease: the record ttl', undefined, undefined, 300],
    ['a lease longer than the ttl', 60, 3600_000, 60],
    ['a lease shorter than the default ttl', undefined, 42_900, 42],
    ['a lease shorter than the record ttl', 600, 10_000, 10],
    ['a lease that just ended', undefined, 0, 0],
    ['a lease past its end', 60, -5_000, 0],
  ])('TTL with %s', (_what, ttl, leaseLeftMs, expected) => {
    const store = new MemoryZoneStore();
    const value = JSON.stringify({ host: '10.0.0.11', port: 31001, ...(ttl === undefined ? {} : { ttl }) });
    store.put(`${ZK}/zk1`, value, leaseLeftMs === undefined ? undefined : NOW + leaseLeftMs);
    const answer = ask('_zookeeper._tcp.env1.skydns.local', 'SRV', store);
    expect(answer.answers.map((record) => record.ttl)).toEqual([expected]);
    expect(answer.additionals.map((record) => record.ttl)).toEqual([expected]);
  });

  it('serves PTR from a name host in a reverse zone', () => {
    const store = MemoryZoneStore.fromValues({ '/skydns/arpa/in-addr/10/0/0/1': '{"host":"reverse.example.com"}' });
    const answer = answerZoneQuery({ name: '1.0.0.10.in-addr.arpa', type: 'PTR' }, { zone: 'in-addr.arpa.', store, now: NOW });
    expect(show(answer).answers).toEqual(['1.0.0.10.in-addr.arpa 300 PTR reverse.example.com']);
  });

  it('reads keys under another prefix', () => {
    const store = MemoryZoneStore.fromValues({ '/coredns/local/skydns/a': '{"host":"10.9.9.9"}' });
    const answer = answerZoneQuery({ name: 'a.skydns.local', type: 'A' }, { zone: 'skydns.local', prefix: 'coredns/', store, now: NOW });
    expect(show(answer).answers).toEqual(['a.skydns.local 300 A 10.9.9.9']);
  });

  it('takes the negative TTL from minTtl (RFC 2308: min of SOA TTL and MINIMUM)', () => {
    const answer = answerZoneQuery({ name: 'nothere.skydns.local', type: 'A' }, { zone: 'skydns.local', store: FIXTURE, now: NOW, minTtl: 5 });
    expect(show(answer).authorities).toEqual([`skydns.local 5 SOA ns.dns.skydns.local hostmaster.skydns.local ${SERIAL} 7200 1800 86400 5`]);
  });

  it('gives every SRV record a weight of at least 1, about 100 per priority', () => {
    const record = fc.record({ priority: fc.integer({ min: 0, max: 3 }), weight: fc.integer({ min: 0, max: 0xffff }) });
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 40 }), (records) => {
        const store = MemoryZoneStore.fromValues(
          records.map((r, i): [string, string] => [`${ZK}/i${i}`, JSON.stringify({ host: '10.0.0.1', port: 1000 + i, ...r })]),
        );
        const answers = ask('_zookeeper._tcp.env1.skydns.local', 'SRV', store).answers;
        expect(answers).toHaveLength(records.length);
        const sums = new Map<number, { sum: number; count: number }>();
        for (const answer of answers) {
          if (answer.type !== 'SRV') throw new Error(`unexpected ${answer.type}`);
          const { priority = 0, weight = 0 } = answer.data;
          expect(weight).toBeGreaterThanOrEqual(1);
          expect(weight).toBeLessThanOrEqual(100);
          const at = sums.get(priority) ?? { sum: 0, count: 0 };
          sums.set(priority, { sum: at.sum + weight, count: at.count + 1 });
        }
        for (const { sum, count } of sums.values()) {
          // Each floor loses less than 1, each bump to 1 adds at most 1.
          expect(sum).toBeGreaterThan(100 - count);
          expect(sum).toBeLessThanOrEqual(100 + count);
        }
      }),
    );
  });
});
