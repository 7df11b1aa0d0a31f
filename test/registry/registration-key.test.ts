import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { keyToName } from '../../src/skydns-model/key-path.js';
import { registrationKey, registrationKeyProblem } from '../../src/registry/registration-key.js';

describe('registrationKey', () => {
  it.each([
    [{ domain: 'env1.skydns.local', service: 'zookeeper', instance: 'zk1' }, '/skydns/local/skydns/env1/_tcp/_zookeeper/zk1'],
    [{ domain: 'env1.skydns.local.', service: 'zookeeper', instance: 'zk1' }, '/skydns/local/skydns/env1/_tcp/_zookeeper/zk1'],
    [{ domain: 'Env1.SkyDNS.Local', service: 'ZooKeeper', instance: 'ZK-1' }, '/skydns/local/skydns/env1/_tcp/_zookeeper/zk-1'],
    [{ domain: 'local', service: 'pg', instance: '0' }, '/skydns/local/_tcp/_pg/0'],
    [{ prefix: '/coredns/', domain: 'env1.skydns.local', service: 'web', instance: 'web-7f9c-31001' }, '/coredns/local/skydns/env1/_tcp/_web/web-7f9c-31001'],
    [{ prefix: 'skydns', domain: 'a.b', service: 'x', instance: 'y' }, '/skydns/b/a/_tcp/_x/y'],
    [{ domain: 'env1.skydns.local', service: 'a'.repeat(63), instance: 'b'.repeat(63) }, `/skydns/local/skydns/env1/_tcp/_${'a'.repeat(63)}/${'b'.repeat(63)}`],
  ])('%j → %s', (options, key) => {
    expect(registrationKey(options)).toBe(key);
  });

  it.each([
    [{ domain: 'env1.skydns.local', service: 'zoo keeper', instance: 'zk1' }, 'invalid service "zoo keeper": holds " "'],
    [{ domain: 'env1.skydns.local', service: '_zookeeper', instance: 'zk1' }, 'invalid service "_zookeeper": holds "_"; give it without the leading "_"'],
    [{ domain: 'env1.skydns.local', service: '', instance: 'zk1' }, 'invalid service "": empty'],
    [{ domain: 'env1.skydns.local', service: '-zk', instance: 'zk1' }, 'invalid service "-zk": starts or ends with "-"'],
    [{ domain: 'env1.skydns.local', service: 'a'.repeat(64), instance: 'zk1' }, `invalid service "${'a'.repeat(64)}": 64 characters long, at most 63 allowed`],
    [{ domain: 'env1.skydns.local', service: 'zk', instance: 'zk.1' }, 'invalid instance "zk.1": holds "."'],
    [{ domain: 'env1.skydns.local', service: 'zk', instance: 'zk1-' }, 'invalid instance "zk1-": starts or ends with "-"'],
    [{ domain: 'env1.skydns.local', service: 'zk', instance: 'zk/1' }, 'invalid instance "zk/1": holds "/"'],
    [{ domain: '', service: 'zk', instance: 'zk1' }, 'invalid domain "": empty'],
    [{ domain: '.', service: 'zk', instance: 'zk1' }, 'invalid domain ".": empty'],
    [{ domain: 'env1..local', service: 'zk', instance: 'zk1' }, 'invalid domain "env1..local": label "": empty'],
    [{ domain: 'env_1.local', service: 'zk', instance: 'zk1' }, 'invalid domain "env_1.local": label "env_1": holds "_"'],
    [{ domain: `${'a'.repeat(60)}.`.repeat(4), service: 'zk', instance: 'zk1' }, 'invalid domain'],
  ])('%j → InvalidArgumentError %s, the problem named by field', (options, message) => {
    expect(() => registrationKey(options)).toThrow(InvalidArgumentError);
    expect(() => registrationKey(options)).toThrow(message);
    const bad = registrationKeyProblem(options);
    expect(`invalid ${bad?.field} "${bad?.value}": ${bad?.problem}`).toContain(message);
  });

  it('reads back as the name <instance>._<service>._tcp.<domain>', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
    fc.assert(
      fc.property(label, label, fc.array(label, { minLength: 1, maxLength: 4 }), (service, instance, domain) => {
        const key = registrationKey({ domain: domain.join('.'), service, instance });
        expect(keyToName(key)).toBe(`${instance}._${service}._tcp.${domain.join('.')}.`);
      }),
    );
  });
});
