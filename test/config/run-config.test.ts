import { describe, expect, it } from 'vitest';
import type { LayeredValue } from '../../src/config/config-file.js';
import { layerSettings, parseConfigFile } from '../../src/config/config-file.js';
import { flagName } from '../../src/config/option-source.js';
import { parseRunConfig, type RunSetting } from '../../src/config/run-config.js';

/** Settings as if typed on the command line. */
function cli(settings: Partial<Record<RunSetting, unknown>>): Partial<Record<RunSetting, LayeredValue>> {
  return Object.fromEntries(
    Object.entries(settings).map(([key, value]) => [key, { value, source: { flag: `--${flagName(key)}`, from: 'cli' as const } }]),
  );
}

const base = { domain: 'env1.skydns.local', map: ['2181=zookeeper'] };

describe('parseRunConfig', () => {
  it('fills in defaults and turns services into SRV names', () => {
    const config = parseRunConfig(cli({ ...base, map: ['2181=zookeeper', '127.0.0.9:5432=postgres.env2', '8080=_web._tcp.other.domain'] }));
    expect(config).toMatchObject({
      domain: 'env1.skydns.local.',
      discovery: 'dns',
      connectTimeout: 2000,
      idleTimeout: undefined,
      maxConns: 1024,
      ejectAfter: 3,
      ejectTime: 5000,
      drainTimeout: 10_000,
      ttlMin: 1000,
      ttlMax: 60_000,
      staleMax: 300_000,
    });
    expect(config.mappings.map(({ listen, service, srvName }) => ({ listen, service, srvName }))).toEqual([
      { listen: { host: '127.0.0.1', port: 2181 }, service: 'zookeeper', srvName: '_zookeeper._tcp.env1.skydns.local.' },
      { listen: { host: '127.0.0.9', port: 5432 }, service: 'postgres.env2', srvName: '_postgres._tcp.env2.skydns.local.' },
      { listen: { host: '127.0.0.1', port: 8080 }, service: '_web._tcp.other.domain', srvName: '_web._tcp.other.domain.' },
    ]);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('gives two mappings on one port distinct loopback addresses, skipping taken ones', () => {
    const config = parseRunConfig(cli({ ...base, map: ['2181=zookeeper', '127.0.0.2:2181=kafka', '2181=zookeeper.env2', '9000=other'] }));
    expect(config.mappings.map((m) => `${m.listen.host}:${m.listen.port}=${m.service}`)).toEqual([
      '127.0.0.1:2181=zookeeper',
      '127.0.0.2:2181=kafka',
      '127.0.0.3:2181=zookeeper.env2',
      '127.0.0.1:9000=other',
    ]);
  });

  it('accepts repeated values, comma lists (environment) and durations as numbers of seconds (config file)', () => {
    const config = parseRunConfig({
      ...cli({ domain: 'env1.skydns.local', map: '2181=zookeeper,5432=postgres' }),
      clusterDns: { value: ['10.0.0.2', '10.0.0.3:5353'], source: { flag: '--cluster-dns', from: 'config', file: 'x.yaml' } },
      connectTimeout: { value: 1.5, source: { flag: '--connect-timeout', from: 'config', file: 'x.yaml' } },
      idleTimeout: { value: '30s', source: { flag: '--idle-timeout', from: 'cli' } },
    });
    expect(config.mappings.map((m) => m.service)).toEqual(['zookeeper', 'postgres']);
    expect(config.clusterDns).toEqual([
      { host: '10.0.0.2', port: 53 },
      { host: '10.0.0.3', port: 5353 },
    ]);
    expect(config.connectTimeout).toBe(1500);
    expect(config.idleTimeout).toBe(30_000);
  });

  it.each([
    ['zookeeper', ['zookeeper', 'zookeeper.env1.skydns.local']],
    ['postgres.env2', ['postgres.env2', 'postgres.env2.skydns.local']],
    ['_kafka._tcp.env1.skydns.local', ['kafka', 'kafka.env1.skydns.local']],
    ['_kafka._tcp.other.org', ['kafka.other.org']],
  ])('gives %s the default aliases %j', (service, aliases) => {
    expect(parseRunConfig(cli({ ...base, map: [`2181=${service}`] })).mappings[0]?.aliases).toEqual(aliases);
  });

  it('adds aliases given with a mapping in the config file, and refuses one name for two listeners', () => {
    const file = (value: unknown): LayeredValue => ({ value, source: { flag: '--map', from: 'config', file: 'f.yaml' } });
    const config = parseRunConfig({
      ...cli({ domain: 'env1.skydns.local' }),
      map: file([{ listen: '127.0.0.2:2181', service: 'zookeeper', aliases: ['ZK', 'zk-legacy.'] }, '5432=postgres']),
    });
    expect(config.mappings.map((m) => [m.listen.host, m.aliases])).toEqual([
      ['127.0.0.2', ['zookeeper', 'zookeeper.env1.skydns.local', 'zk', 'zk-legacy']],
      ['127.0.0.1', ['postgres', 'postgres.env1.skydns.local']],
    ]);
    expect(() => parseRunConfig({ ...cli({ domain: 'env1.skydns.local' }), map: file([{ listen: 2181, service: 'a', aliases: ['b'] }, '2182=b']) })).toThrowError(
      'name "b" would lead to two listeners (127.0.0.1:2181 and 127.0.0.1:2182)',
    );
    expect(() => parseRunConfig({ ...cli({ domain: 'env1.skydns.local' }), map: file([{ port: 2181, service: 'a' }]) })).toThrowError(
      'unknown key "port" in key "map" in f.yaml, entry {"port":2181,"service":"a"}: expected one of listen, service, aliases',
    );
    expect(() => parseRunConfig({ ...cli({ domain: 'env1.skydns.local' }), map: file([{ listen: 2181, service: 'a', alias: ['b'] }]) })).toThrowError(
      'did you mean "aliases"?',
    );
    expect(() => parseRunConfig({ ...cli({ domain: 'env1.skydns.local' }), map: file([{ service: 'a' }]) })).toThrowError(
      'expected "[ADDR:]PORT=SERVICE" or {listen: "[ADDR:]PORT", service: NAME, aliases: [NAME, ...]}',
    );
  });

  it('configures the DNS stub: defaults, none, cluster domain, upstreams, allow-from', () => {
    expect(parseRunConfig(cli(base))).toMatchObject({
      dnsListen: { host: '127.0.0.1', port: 53 },
      clusterDomain: 'skydns.local.',
      upstream: [],
      writeResolvConf: false,
      resolvConf: '/etc/resolv.conf',
      dnsCacheSize: 10_000,
      allowFrom: [],
    });
    const custom = parseRunConfig(
      cli({ ...base, dnsListen: '0.0.0.0:5353', clusterDomain: 'cluster.example', upstream: ['9.9.9.9', '[2001:db8::1]:5353'], allowFrom: ['10.0.0.0/8', '192.168.1.7'] }),
    );
    expect(custom).toMatchObject({
      dnsListen: { host: '0.0.0.0', port: 5353 },
      clusterDomain: 'cluster.example.',
      upstream: [
        { host: '9.9.9.9', port: 53 },
        { host: '2001:db8::1', port: 5353 },
      ],
      allowFrom: [
        { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
        { address: '192.168.1.7', prefix: 32, family: 'ipv4' },
      ],
    });
    expect(parseRunConfig(cli({ ...base, dnsListen: 'none' })).dnsListen).toBeUndefined();
    expect(parseRunConfig(cli(base)).prefix).toBe('/skydns');
    expect(parseRunConfig(cli({ ...base, prefix: '/custom/' })).prefix).toBe('/custom');
    expect(parseRunConfig(cli({ ...base, writeResolvConf: true })).writeResolvConf).toBe(true);
  });

  it('reads static backends per service', () => {
    const config = parseRunConfig(cli({ ...base, discovery: 'static', backend: ['zookeeper=127.0.0.1:9001,127.0.0.1:9002'] }));
    expect(config.backends.get('_zookeeper._tcp.env1.skydns.local.')?.map((b) => `${b.host}:${b.port}`)).toEqual(['127.0.0.1:9001', '127.0.0.1:9002']);
  });

  it.each([
    [{ map: ['2181=zookeeper'] }, 'missing --domain: the environment this container belongs to, e.g. --domain env1.skydns.local'],
    [{ domain: 'env1.skydns.local' }, 'missing --map: at least one [ADDR:]PORT=SERVICE mapping, e.g. --map 2181=zookeeper'],
    [{ ...base, map: ['zookeeper'] }, 'invalid --map "zookeeper": expected [ADDR:]PORT=SERVICE, e.g. 2181=zookeeper or 127.0.0.2:5432=postgres.env2'],
    [{ ...base, map: ['2181='] }, 'invalid --map "2181=": expected [ADDR:]PORT=SERVICE'],
    [{ ...base, map: ['70000=zookeeper'] }, 'invalid port "70000" in --map "70000=zookeeper": expected a number 0-65535'],
    [{ ...base, map: ['2181=zoo keeper'] }, 'invalid --map "2181=zoo keeper": invalid service "zoo keeper"'],
    [{ ...base, map: ['localhost:2181=zookeeper'] }, 'the address to listen on must be an IP address, not "localhost"'],
    [{ ...base, map: ['127.0.0.5:2181=a', '127.0.0.5:2181=b'] }, 'invalid --map: two mappings on 127.0.0.5:2181'],
    [{ ...base, listen: '0.0.0.0', map: ['2181=a', '2181=b'] }, 'port 2181 is mapped twice on 0.0.0.0; give each an address'],
    [{ ...base, listen: 'localhost' }, 'invalid --listen "localhost": expected an IP address to bind'],
    [{ ...base, discovery: 'consul' }, 'invalid --discovery "consul": expected dns, etcd or static'],
    [{ ...base, discovery: 'static' }, 'missing --backend for service "zookeeper"'],
    [{ ...base, backend: ['kafka=127.0.0.1:9092'] }, 'no --map uses service "kafka"'],
    [{ ...base, connectTimeout: '0s' }, 'invalid --connect-timeout "0s": expected a duration above 0'],
    [{ ...base, maxConns: 'lots' }, 'invalid --max-conns "lots": expected a whole number from 1 to 1000000'],
    [{ ...base, ttlMin: '2m', ttlMax: '1m' }, 'invalid --ttl-min "2m": longer than --ttl-max (1m)'],
    [{ ...base, staleMax: 'forever' }, 'invalid --stale-max "forever"'],
    [{ ...base, dnsListen: 'localhost:53' }, 'invalid --dns-listen "localhost:53": expected ADDR[:PORT] with an IP address, or none'],
    [{ ...base, allowFrom: ['10.0.0.0/33'] }, 'invalid --allow-from "10.0.0.0/33": prefix length "33" must be 0-32'],
    [{ ...base, allowFrom: ['nowhere'] }, 'invalid --allow-from "nowhere": "nowhere" is not an IP address'],
    [{ ...base, writeResolvConf: true, dnsListen: '127.0.0.1:5353' }, 'resolv.conf can only point at a stub on port 53'],
    [{ ...base, writeResolvConf: true, dnsListen: 'none' }, 'resolv.conf can only point at a stub on port 53'],
    [{ ...base, writeResolvConf: 'maybe' }, 'invalid --write-resolv-conf "maybe": expected true or false'],
    [{ ...base, dnsCacheSize: '0' }, 'invalid --dns-cache-size "0": expected a whole number from 1'],
    [{ ...base, clusterDns: ['dns.example'] }, 'invalid --cluster-dns "dns.example": "dns.example" is not an IP address'],
    [{ ...base, upstream: ['9.9.9.9:0'] }, 'invalid --upstream "9.9.9.9:0": port 0 cannot be sent to'],
    [{ ...base, ttlMin: '0s' }, 'invalid --ttl-min "0s": expected a duration above 0'],
    [{ ...base, ejectTime: '1000h' }, 'invalid --eject-time "1000h": longer than the longest timer'],
  ])('refuses %j', (settings, message) => {
    expect(() => parseRunConfig(cli(settings))).toThrowError(message);
  });

  it('names the environment variable or the config file key a bad value came from', () => {
    expect(() =>
      parseRunConfig({ ...cli({ domain: 'env1.skydns.local' }), map: { value: 'nope', source: { flag: '--map', env: 'SRVLINK_MAP', from: 'env' } } }),
    ).toThrowError('invalid SRVLINK_MAP (for --map) "nope"');
    expect(() =>
      parseRunConfig({ ...cli(base), maxConns: { value: -1, source: { flag: '--max-conns', from: 'config', file: '/etc/srvlink.yaml' } } }),
    ).toThrowError('invalid key "max-conns" in /etc/srvlink.yaml "-1"');
  });
});

describe('config file layering', () => {
  it('parses YAML and JSON, refusing unknown keys with the nearest known one', () => {
    expect(parseConfigFile('domain: env1.skydns.local\nmap: ["2181=zookeeper"]\n', 'a.yaml', ['domain', 'map'])).toEqual({
      domain: 'env1.skydns.local',
      map: ['2181=zookeeper'],
    });
    expect(parseConfigFile('{"domain": "x.y"}', 'a.json', ['domain'])).toEqual({ domain: 'x.y' });
    expect(() => parseConfigFile('domian: x', 'a.yaml', ['domain', 'map'])).toThrowError('unknown key "domian" in config file "a.yaml": did you mean "domain"?');
    expect(() => parseConfigFile('zzzzzz: x', 'a.yaml', ['domain', 'map'])).toThrowError('unknown key "zzzzzz" in config file "a.yaml": expected one of domain, map');
    expect(() => parseConfigFile('- a\n- b', 'a.yaml', ['domain'])).toThrowError('expected a mapping of settings, got a list');
    expect(() => parseConfigFile('domain: [unclosed', 'a.yaml', ['domain'])).toThrowError(/cannot read config file "a.yaml"/);
  });

  it('lets flags and environment win over the file, and the file over defaults', () => {
    const layered = layerSettings(
      { domain: 'from-flag.local', listen: '127.0.0.1', maxConns: '1024' },
      {
        domain: { flag: '--domain', from: 'cli' },
        listen: { flag: '--listen', from: 'default' },
        maxConns: { flag: '--max-conns', from: 'default' },
      },
      { domain: 'from-file.local', listen: '0.0.0.0' },
      'f.yaml',
      flagName,
    );
    expect(layered.domain?.value).toBe('from-flag.local');
    expect(layered.listen).toEqual({ value: '0.0.0.0', source: { flag: '--listen', from: 'config', file: 'f.yaml' } });
    expect(layered.maxConns?.value).toBe('1024');
  });
});
