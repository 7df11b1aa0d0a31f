import { describe, expect, it } from 'vitest';
import { ConfigError, InvalidArgumentError, SrvlinkError } from '../../src/core/errors.js';
import { StaticBackendSource, parseStaticBackends, type ParsedStaticBackends, type StaticBackend } from '../../src/discovery/static-backend-source.js';

const EXPECTED = 'expected SERVICE=HOST:PORT[,HOST:PORT...]';

describe('StaticBackendSource', () => {
  it('resolves at once with the configured backends, status static, SkyDNS defaults filled in', async () => {
    const source = new StaticBackendSource({
      name: '_zookeeper._tcp.env1.skydns.local.',
      backends: [
        { host: '10.0.0.1', port: 2181 },
        { host: 'zk2.example', port: 2182, priority: 20, weight: 5 },
        { host: '::1', port: 2183, weight: 0 },
      ],
      now: () => 1234,
    });
    await source.start();
    let settled = false;
    const pending = source.current().finally(() => (settled = true));
    await Promise.resolve();
    await Promise.resolve();
    expect(settled).toBe(true);
    const set = await pending;
    expect(set).toEqual({
      name: '_zookeeper._tcp.env1.skydns.local.',
      status: 'static',
      updatedAt: 1234,
      stale: false,
      backends: [
        { target: '10.0.0.1', port: 2181, priority: 10, weight: 100, addresses: ['10.0.0.1'] },
        // A host name is kept as the address: net.connect resolves it when dialing.
        { target: 'zk2.example', port: 2182, priority: 20, weight: 5, addresses: ['zk2.example'] },
        { target: '::1', port: 2183, priority: 10, weight: 0, addresses: ['::1'] },
      ],
    });
    expect(Object.isFrozen(set)).toBe(true);
    expect(Object.isFrozen(set.backends[0])).toBe(true);
    expect(await source.current()).toBe(set);
  });

  it('never calls update listeners, and rejects after close (safe twice)', async () => {
    const source = new StaticBackendSource({ name: 'zookeeper', backends: [{ host: '10.0.0.1', port: 2181 }] });
    const seen: unknown[] = [];
    const unsubscribe = source.onUpdate((set) => seen.push(set));
    await source.start();
    await source.current();
    unsubscribe();
    await source.close();
    await source.close();
    await expect(source.current()).rejects.toMatchObject({ code: 'ERR_DISCOVERY', message: 'no backends for "zookeeper": discovery is closed' });
    expect(seen).toEqual([]);
  });

  it('rejects current() with ERR_DISCOVERY when no backend is configured', async () => {
    const source = new StaticBackendSource({ name: 'zookeeper', backends: [] });
    const rejection = source.current();
    await expect(rejection).rejects.toBeInstanceOf(SrvlinkError);
    await expect(rejection).rejects.toMatchObject({
      code: 'ERR_DISCOVERY',
      message: 'no backends for "zookeeper": none configured, expected --backend SERVICE=HOST:PORT',
    });
  });

  it.each<[string, StaticBackend, string]>([
    ['port 0', { host: '10.0.0.1', port: 0 }, 'invalid static backend "10.0.0.1:0" of "svc": port 0, expected an integer 1-65535'],
    ['port too big', { host: '10.0.0.1', port: 65536 }, 'invalid static backend "10.0.0.1:65536" of "svc": port 65536, expected an integer 1-65535'],
    ['fractional port', { host: '10.0.0.1', port: 1.5 }, 'invalid static backend "10.0.0.1:1.5" of "svc": port 1.5, expected an integer 1-65535'],
    ['negative priority', { host: 'a', port: 1, priority: -1 }, 'invalid static backend "a:1" of "svc": priority -1, expected an integer 0-65535'],
    ['weight NaN', { host: 'a', port: 1, weight: Number.NaN }, 'invalid static backend "a:1" of "svc": weight NaN, expected an integer 0-65535'],
    ['empty host', { host: '', port: 1 }, 'invalid static backend ":1" of "svc": "" is neither an IP address nor a host name'],
    ['host with a space', { host: 'a b', port: 1 }, 'invalid static backend "a b:1" of "svc": "a b" is neither an IP address nor a host name'],
  ])('refuses a bad backend (%s)', (_what, backend, message) => {
    const make = (): StaticBackendSource => new StaticBackendSource({ name: 'svc', backends: [backend] });
    expect(make).toThrow(InvalidArgumentError);
    expect(make).toThrow(message);
  });

  it('refuses an empty name', () => {
    expect(() => new StaticBackendSource({ name: ' ', backends: [] })).toThrow(InvalidArgumentError);
  });
});

describe('parseStaticBackends', () => {
  it.each<[string, ParsedStaticBackends]>([
    ['zookeeper=10.0.0.1:2181', { service: 'zookeeper', backends: [{ host: '10.0.0.1', port: 2181 }] }],
    [
      'zookeeper=10.0.0.1:2181,10.0.0.2:2182',
      {
        service: 'zookeeper',
        backends: [
          { host: '10.0.0.1', port: 2181 },
          { host: '10.0.0.2', port: 2182 },
        ],
      },
    ],
    [
      ' zk = zk1.example:2181 , localhost:2182 ',
      {
        service: 'zk',
        backends: [
          { host: 'zk1.example', port: 2181 },
          { host: 'localhost', port: 2182 },
        ],
      },
    ],
    [
      'postgres=[::1]:5432,[2001:db8::1]:5433',
      {
        service: 'postgres',
        backends: [
          { host: '::1', port: 5432 },
          { host: '2001:db8::1', port: 5433 },
        ],
      },
    ],
    ['zookeeper.env2=10.0.0.1:2181', { service: 'zookeeper.env2', backends: [{ host: '10.0.0.1', port: 2181 }] }],
    ['_zookeeper._tcp.env1.skydns.local=zk1:2181', { service: '_zookeeper._tcp.env1.skydns.local', backends: [{ host: 'zk1', port: 2181 }] }],
  ])('parses %j', (value, expected) => {
    expect(parseStaticBackends(value, '--backend')).toEqual(expected);
  });

  it.each<[string, string]>([
    ['zookeeper', `invalid --backend "zookeeper": missing "=", ${EXPECTED}`],
    ['=10.0.0.1:2181', `invalid --backend "=10.0.0.1:2181": missing SERVICE, ${EXPECTED}`],
    ['zk=', `invalid --backend "zk=": missing HOST:PORT, ${EXPECTED}`],
    ['zk=a:1,', `invalid --backend "zk=a:1,": empty HOST:PORT in the list, ${EXPECTED}`],
    ['z k=a:1', `invalid --backend "z k=a:1": "z k" is not a service name, ${EXPECTED}`],
    ['zk=a', 'invalid --backend "zk=a": backend "a": missing port, expected HOST:PORT'],
    ['zk=a:0', `invalid --backend "zk=a:0": backend "a:0" has port 0, which cannot be dialed, ${EXPECTED}`],
    ['zk=a:99999', 'invalid port "99999" in --backend "zk=a:99999": backend "a:99999": expected a number 0-65535'],
    ['zk=a:http', 'invalid port "http" in --backend "zk=a:http": backend "a:http": expected a number 0-65535'],
    ['zk=a b:1', 'invalid --backend "zk=a b:1": backend "a b:1": "a b" is neither an IP address nor a host name, expected HOST:PORT'],
    ['zk=[10.0.0.1]:1', 'invalid --backend "zk=[10.0.0.1]:1": backend "[10.0.0.1]:1": "10.0.0.1" is not an IPv6 address, expected HOST:PORT'],
    ['zk=A.example:1,a.example:1', `invalid --backend "zk=A.example:1,a.example:1": backend "a.example:1" is listed twice, ${EXPECTED}`],
  ])('refuses %j with a message naming the flag, the value and what is expected', (value, message) => {
    const parse = (): ParsedStaticBackends => parseStaticBackends(value, '--backend');
    expect(parse).toThrow(ConfigError);
    expect(parse).toThrow(message);
  });

  it('names the setting it is given', () => {
    expect(() => parseStaticBackends('zookeeper', 'SRVLINK_BACKEND (for --backend)')).toThrow(
      `invalid SRVLINK_BACKEND (for --backend) "zookeeper": missing "=", ${EXPECTED}`,
    );
  });
});
