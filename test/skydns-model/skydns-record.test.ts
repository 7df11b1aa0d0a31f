import { describe, expect, it } from 'vitest';
import { SrvlinkError } from '../../src/core/errors.js';
import { parseSkydnsRecord } from '../../src/skydns-model/skydns-record.js';

const KEY = '/skydns/local/skydns/env1/_tcp/_zookeeper/zk1';

describe('parseSkydnsRecord', () => {
  it('reads a registration value with CoreDNS defaults applied', () => {
    expect(parseSkydnsRecord(KEY, '{"host":"10.0.0.11","port":31001}')).toEqual({
      host: '10.0.0.11',
      hostKind: 'ipv4',
      address: '10.0.0.11',
      port: 31001,
      priority: 10,
      weight: 0,
      text: '',
      ttl: undefined,
      targetstrip: 0,
      group: '',
      mail: false,
    });
  });

  it('reads every field', () => {
    const value = { host: 'db.example.com.', port: 5432, priority: 20, weight: 50, text: 't', ttl: 60, targetstrip: 1, group: 'g', mail: true };
    expect(parseSkydnsRecord(KEY, JSON.stringify(value))).toEqual({
      host: 'db.example.com',
      hostKind: 'name',
      address: undefined,
      port: 5432,
      priority: 20,
      weight: 50,
      text: 't',
      ttl: 60,
      targetstrip: 1,
      group: 'g',
      mail: true,
    });
  });

  it.each([
    ['priority 0 → 10', '{"host":"10.0.0.1","priority":0}', { priority: 10 }],
    ['weight 0 stays 0 (the SRV rules count it as 100)', '{"host":"10.0.0.1","weight":0}', { weight: 0 }],
    ['ttl 0 → unset', '{"host":"10.0.0.1","ttl":0}', { ttl: undefined }],
    ['null counts as missing', '{"host":"10.0.0.1","port":null,"text":null}', { port: 0, text: '' }],
    ['field names match case-insensitively, as Go does', '{"Host":"10.0.0.1","PORT":80}', { host: '10.0.0.1', port: 80 }],
    ['an exact field name wins over a case-insensitive one', '{"Port":1,"port":2,"host":"h"}', { port: 2 }],
    ['unknown fields are ignored', '{"host":"10.0.0.1","key":"/x","extra":[1]}', { host: '10.0.0.1' }],
    ['a TXT-only record needs no host', '{"text":"hello"}', { host: '', hostKind: 'none', text: 'hello' }],
    ['IPv6 in canonical form', '{"host":"2001:DB8:0::1"}', { hostKind: 'ipv6', address: '2001:db8::1' }],
    ['IPv4-mapped IPv6 is IPv4 (Go To4)', '{"host":"::ffff:10.1.2.3"}', { hostKind: 'ipv4', address: '10.1.2.3' }],
    ['a single-label name', '{"host":"localhost"}', { hostKind: 'name', host: 'localhost' }],
    ['a service-style name', '{"host":"_x._tcp.example.com"}', { hostKind: 'name' }],
  ])('%s', (_what, value, expected) => {
    expect(parseSkydnsRecord(KEY, value)).toMatchObject(expected);
  });

  it('takes an already decoded object (a records file)', () => {
    expect(parseSkydnsRecord(KEY, { host: '10.0.0.1', port: 80 })).toMatchObject({ host: '10.0.0.1', port: 80 });
  });

  it.each([
    ['an instance segment over 63 octets', `/skydns/local/skydns/_tcp/_pg/${'x'.repeat(70)}`, 'is not a DNS label: 70 octets, at most 63'],
    ['a dotted segment with a label over 63 octets', `/skydns/local/skydns/a.${'x'.repeat(64)}`, 'is not a DNS label: 64 octets'],
    ['multi-byte characters over 63 octets', `/skydns/local/${'é'.repeat(32)}`, '64 octets'],
    ['a name over 255 octets', `/skydns/local/${Array.from({ length: 5 }, () => 'y'.repeat(60)).join('/')}`, 'octets, at most 255'],
    ['an empty label inside a segment', '/skydns/local/a..b', 'holds an empty label'],
  ])('refuses a key whose name cannot go on the wire: %s', (_what, key, problem) => {
    expect(() => parseSkydnsRecord(key, '{"host":"10.0.0.1"}')).toThrow(problem);
  });

  it.each([
    ['a 63-octet label', `/skydns/local/${'x'.repeat(63)}`],
    ['a wildcard segment', '/skydns/local/skydns/*'],
    ['an empty segment (skipped, as in CoreDNS)', '/skydns//local/x/'],
  ])('accepts a key with %s', (_what, key) => {
    expect(parseSkydnsRecord(key, '{"host":"10.0.0.1"}').address).toBe('10.0.0.1');
  });

  it('returns a frozen record', () => {
    expect(Object.isFrozen(parseSkydnsRecord(KEY, '{"host":"10.0.0.1"}'))).toBe(true);
  });

  it.each([
    ['not JSON', '{host: 10.0.0.1}', 'value is not JSON'],
    ['empty', '', 'value is not JSON'],
    ['a JSON array', '[1,2]', 'value must be a JSON object, got [1,2]'],
    ['JSON null', 'null', 'value must be a JSON object, got null'],
    ['a JSON string', '"10.0.0.1"', 'value must be a JSON object, got "10.0.0.1"'],
    ['a decoded number', 42, 'value must be a JSON object, got 42'],
    ['no host and no text', '{"port":80}', '"host" is missing'],
    ['host empty', '{"host":""}', '"host" is missing'],
    ['host a number', '{"host":10}', '"host" must be a string, got 10'],
    ['host with a space', '{"host":"bad host"}', '"host" must be an IP address or a valid DNS name, got "bad host"'],
    ['host a mistyped address', '{"host":"10.0.0.256"}', 'got "10.0.0.256"'],
    ['host with an empty label', '{"host":"a..b"}', 'got "a..b"'],
    ['host label over 63', `{"host":"${'a'.repeat(64)}.com"}`, 'valid DNS name'],
    ['port a string', '{"host":"h","port":"80"}', '"port" must be an integer from 0 to 65535, got "80"'],
    ['port too big', '{"host":"h","port":70000}', '"port" must be an integer from 0 to 65535, got 70000'],
    ['port negative', '{"host":"h","port":-1}', 'got -1'],
    ['port fractional', '{"host":"h","port":1.5}', 'got 1.5'],
    ['priority too big', '{"host":"h","priority":65536}', '"priority" must be an integer from 0 to 65535'],
    ['weight a string', '{"host":"h","weight":"3"}', '"weight" must be an integer'],
    ['ttl beyond 2^31-1', '{"host":"h","ttl":2147483648}', '"ttl" must be an integer from 0 to 2147483647'],
    ['targetstrip a boolean', '{"host":"h","targetstrip":true}', '"targetstrip" must be an integer'],
    ['text a number', '{"host":"h","text":1}', '"text" must be a string, got 1'],
    ['group an object', '{"host":"h","group":{}}', '"group" must be a string'],
    ['mail a string', '{"host":"h","mail":"yes"}', '"mail" must be true or false, got "yes"'],
    // JSON.parse takes any depth; writing the value back into the message must not overflow the stack.
    ['an array nested 500,000 deep', `${'['.repeat(500_000)}${']'.repeat(500_000)}`, 'value must be a JSON object, got an array nested too deep to show'],
    ['a host of a megabyte', JSON.stringify({ host: 'h'.repeat(2 ** 20) }), `got "${'h'.repeat(76)}...`],
  ])('refuses %s', (_what, value, problem) => {
    let caught: unknown;
    try {
      parseSkydnsRecord(KEY, value);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SrvlinkError);
    expect((caught as SrvlinkError).code).toBe('ERR_SKYDNS_RECORD');
    expect((caught as SrvlinkError).message).toContain(`cannot read skydns record at key "${KEY}": `);
    expect((caught as SrvlinkError).message).toContain(problem);
  });
});
