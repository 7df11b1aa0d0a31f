import { describe, expect, it } from 'vitest';
import { serviceSrvName } from '../../src/discovery/service-name.js';

describe('serviceSrvName', () => {
  it.each([
    ['zookeeper', 'env1.skydns.local', '_zookeeper._tcp.env1.skydns.local.'],
    ['ZooKeeper', 'env1.skydns.local.', '_zookeeper._tcp.env1.skydns.local.'],
    ['postgres.env2', 'env1.skydns.local', '_postgres._tcp.env2.skydns.local.'],
    ['_zookeeper._tcp.env1.skydns.local', '', '_zookeeper._tcp.env1.skydns.local.'],
    ['_ldap._udp.example.org.', 'env1.skydns.local', '_ldap._udp.example.org.'],
  ])('%s in %s is %s', (service, domain, expected) => {
    expect(serviceSrvName(service, domain)).toBe(expected);
  });

  it.each([
    ['', 'env1.skydns.local', /empty/],
    ['zookeeper', '', /no --domain/],
    ['a.b.c', 'env1.skydns.local', /too many labels/],
    ['zoo_keeper', 'env1.skydns.local', /"zoo_keeper" is not a valid DNS label/],
    ['postgres.env2', 'local', /has no parent/],
    ['_zookeeper.env1', 'env1.skydns.local', /a full SRV name needs/],
    [`${'x'.repeat(64)}`, 'env1.skydns.local', /not a valid DNS label/],
  ])('refuses %j (domain %j)', (service, domain, message) => {
    expect(() => serviceSrvName(service, domain)).toThrowError(message);
  });
});
