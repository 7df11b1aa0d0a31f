import { describe, expect, it } from 'vitest';
import {
  absoluteName,
  canonicalName,
  hostLabelProblem,
  isDomainLabel,
  isDomainName,
  isHostLabel,
  isHostName,
  isInZone,
  isServiceLabel,
  relativeName,
  wireNameProblem,
} from '../../src/core/dns-name.js';

const long = (n: number): string => 'a'.repeat(n);

describe('canonical form', () => {
  it.each([
    ['ZK.Env1.SkyDNS.local.', 'zk.env1.skydns.local', 'zk.env1.skydns.local.'],
    ['a.', 'a', 'a.'],
    ['b', 'b', 'b.'],
    ['.', '', '.'],
    ['', '', '.'],
  ])('%j → %j, absolute %j', (name, canonical, absolute) => {
    expect(canonicalName(name)).toBe(canonical);
    expect(absoluteName(name)).toBe(absolute);
  });

  it.each([
    ['Zk1.SkyDNS.local.', 'Zk1.SkyDNS.local'],
    ['zk1.skydns.local', 'zk1.skydns.local'],
    ['a..', 'a.'],
    ['.', ''],
    ['', ''],
  ])('relativeName(%j) = %j: one trailing dot dropped, case kept', (name, relative) => expect(relativeName(name)).toBe(relative));

  it.each([
    ['zk.env1.skydns.local.', 'skydns.local', true],
    ['skydns.local', 'SKYDNS.local.', true],
    ['notskydns.local', 'skydns.local', false],
    ['example.com', 'skydns.local', false],
    ['anything', '.', true],
  ])('isInZone(%s, %s) = %s', (name, zone, expected) => expect(isInZone(name, zone)).toBe(expected));
});

describe('labels', () => {
  it.each([
    // label, host label problem, service label (with a leading "_"), domain label
    ['zk1', undefined, true, true],
    ['0', undefined, true, true],
    ['ZK-1', undefined, true, true],
    [long(63), undefined, true, true],
    [long(64), '64 characters long, at most 63 allowed', false, false],
    ['', 'empty', false, false],
    ['-zk', 'starts or ends with "-"', false, false],
    ['zk-', 'starts or ends with "-"', false, false],
    ['zoo_keeper', 'holds "_"', false, true],
    ['_tcp', 'holds "_"', false, true],
    ['zk.1', 'holds "."', false, false],
    ['zoo keeper', 'holds " "', false, false],
    ['zk/1', 'holds "/"', false, false],
  ])('%j: host label problem %j, service label %j, domain label %j', (label, problem, service, domain) => {
    expect(hostLabelProblem(label)).toBe(problem);
    expect(isHostLabel(label)).toBe(problem === undefined);
    expect(isServiceLabel(`_${label}`)).toBe(service);
    expect(isDomainLabel(label)).toBe(domain);
  });

  it('a service label starts with one "_"', () => {
    expect(isServiceLabel('zookeeper')).toBe(false);
    expect(isServiceLabel('__zookeeper')).toBe(false);
    expect(isServiceLabel('_')).toBe(false);
  });
});

describe('names', () => {
  it.each([
    // name, domain name, host name
    ['skydns.local', true, true],
    ['skydns.local.', true, true],
    ['_zookeeper._tcp.env1.skydns.local', true, true],
    ['zk1', true, true],
    ['project_web_1', true, true],
    ['10.0.0.256', true, false],
    ['host.123', true, false],
    ['123.example', true, true],
    [`${long(63)}.${long(63)}.${long(63)}.${long(61)}`, true, true],
    [`${long(63)}.${long(63)}.${long(63)}.${long(62)}`, false, false],
    ['', false, false],
    ['.', false, false],
    ['a..b', false, false],
    ['bad zone', false, false],
    ['bad host!', false, false],
    ['-a.example', false, false],
    ['a-.example', false, false],
    ['a.example..', false, false],
  ])('%j: domain name %j, host name %j', (name, domain, host) => {
    expect(isDomainName(name)).toBe(domain);
    expect(isHostName(name)).toBe(host);
  });
});

describe('wireNameProblem', () => {
  it.each([
    [['zk1', 'skydns', 'local'], undefined],
    [[], undefined],
    [['a', '', 'b'], { kind: 'emptyLabel', label: '' }],
    [[long(64)], { kind: 'longLabel', label: long(64), octets: 64 }],
    // "é" is two octets: 32 of them are 64.
    [['é'.repeat(32)], { kind: 'longLabel', label: 'é'.repeat(32), octets: 64 }],
    [[long(63), long(63), long(63), long(61)], undefined],
    [[long(63), long(63), long(63), long(62)], { kind: 'longName', octets: 256 }],
  ])('%j → %j', (labels, problem) => {
    expect(wireNameProblem(labels)).toEqual(problem);
  });
});
