import { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { configFileKeys } from '../../src/config/config-file.js';
import { nearestKey, unknownKeyMessage } from '../../src/config/nearest-key.js';
import { registerEntries } from '../../src/config/register-entries.js';
import type { OptionSource } from '../../src/config/option-source.js';

const RUN_KEYS = ['domain', 'map', 'listen', 'cluster-dns', 'connect-timeout', 'idle-timeout', 'register', 'etcd', 'etcd-cacert', 'etcd-cert', 'etcd-key', 'allow-from'];

describe('nearestKey', () => {
  it.each([
    ['mapping', 'map'],
    ['domian', 'domain'],
    ['conect-timeout', 'connect-timeout'],
    ['connect_timeout', 'connect-timeout'],
    ['clusterdns', 'cluster-dns'],
    ['connect', 'connect-timeout'],
    ['etcd-cacerts', 'etcd-cacert'],
    ['Listen', 'listen'],
    ['allowfrom', 'allow-from'],
  ])('%s → %s', (typed, expected) => {
    expect(nearestKey(typed, RUN_KEYS)).toBe(expected);
  });

  it.each([['frobnicate'], ['zz'], ['x']])('%s → nothing close enough', (typed) => {
    expect(nearestKey(typed, RUN_KEYS)).toBeUndefined();
  });

  it('words the hint, or lists the keys when nothing is near', () => {
    expect(unknownKeyMessage('mapping', 'config file "f.yaml"', RUN_KEYS)).toBe('unknown key "mapping" in config file "f.yaml": did you mean "map"?');
    expect(unknownKeyMessage('qqqq', 'x', ['a', 'b'])).toBe('unknown key "qqqq" in x: expected one of a, b');
  });
});

describe('configFileKeys', () => {
  it("derives the keys from a command's options, leaving out --config, --help and --version", () => {
    const command = new Command('run')
      .option('--config <file>')
      .option('--domain <d>')
      .option('--connect-timeout <t>')
      .option('--no-color')
      .addOption(new Option('--log-level <l>'))
      .version('1.0.0');
    command.helpOption('-h, --help');
    expect(configFileKeys(command.options.map((o) => o.long))).toEqual(['domain', 'connect-timeout', 'color', 'log-level']);
  });
});

describe('registerEntries', () => {
  const file = (value: unknown): { value: unknown; source: OptionSource } => ({ value, source: { flag: '--register', from: 'config', file: 'f.yaml' } });

  it('takes strings and structured entries with a check given either way', () => {
    expect(
      registerEntries(
        file([
          'web:8080:check=tcp://127.0.0.1:8080',
          { service: 'api', port: '$PORT0', host: '10.0.0.5', priority: 20, 'check-interval': '2s', check: 'http://127.0.0.1:9000/health' },
          { service: 'zk', port: 2181, ttl: 15, check: { target: 'tcp://127.0.0.1:2181', interval: '1s', timeout: '500ms', rise: 2, fall: 4 } },
        ]),
      ),
    ).toEqual([
      { service: 'web', port: '8080', check: 'tcp://127.0.0.1:8080' },
      { service: 'api', port: '$PORT0', host: '10.0.0.5', priority: '20', checkInterval: '2s', check: 'http://127.0.0.1:9000/health' },
      { service: 'zk', port: '2181', ttl: '15', check: 'tcp://127.0.0.1:2181', checkInterval: '1s', checkTimeout: '500ms', rise: '2', fall: '4' },
    ]);
  });

  it('splits comma lists from the environment', () => {
    expect(registerEntries({ value: ['a:1,b:2'], source: { flag: '--register', env: 'SRVLINK_REGISTER', from: 'env' } })).toEqual([
      { service: 'a', port: '1' },
      { service: 'b', port: '2' },
    ]);
  });

  it.each([
    [[{ service: 'web', prot: 80 }], 'unknown key "prot" in key "register" in f.yaml, entry 1: did you mean "port"?'],
    [[{ service: 'web', port: 80, check: { target: 'tcp://a:1', intervall: '1s' } }], 'unknown key "intervall" in key "register" in f.yaml, entry 1, check: did you mean "interval"?'],
    [[{ service: 'web', port: 80, check: { interval: '1s' } }], 'missing key "register" in f.yaml, entry 1, check, target'],
    [[{ service: 'web', port: [80] }], 'invalid key "register" in f.yaml, entry 1, port [80]: expected text or a number'],
    [[['web', 80]], 'invalid key "register" in f.yaml, entry 1: expected "NAME:PORT[:key=value...]" or {service: NAME, port: PORT, check: ...}'],
  ])('refuses %j', (value, message) => {
    expect(() => registerEntries(file(value))).toThrowError(message);
  });
});
