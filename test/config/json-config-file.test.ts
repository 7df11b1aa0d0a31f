import { describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../src/config/config-file.js';
import { parseJsonConfigFile } from '../../src/config/json-config-file.js';

const KEYS = ['domain', 'map', 'cluster-dns', 'connect-timeout', 'write-resolv-conf', 'max-conns', 'register'];

/** What the YAML parser makes of `text`: a value, or the message it throws. */
function viaYaml(text: string): unknown {
  try {
    return parseConfigFile(text, 'f.json', KEYS);
  } catch (err) {
    return (err as Error).message;
  }
}

describe('parseJsonConfigFile', () => {
  it.each([
    ['{}'],
    ['null'],
    ['  {"domain": "env1.skydns.local"}\n'],
    ['{"domain":"env1.skydns.local","map":["2181=zookeeper",{"listen":"127.0.0.2:5432","service":"postgres.env2","aliases":["db"]}]}'],
    ['{"cluster-dns": ["10.0.0.2", "10.0.0.3:5353"], "connect-timeout": "1s", "write-resolv-conf": true, "max-conns": 2048}'],
    ['{"domain": "\\u0065nv1.sky\\"dns\\".local\\/x", "map": [], "register": [{"service": "web", "port": 8080, "check": {"target": "tcp://127.0.0.1:8080", "rise": 2}}]}'],
    ['{"map": [{"a": {"b": [1, 2.5, -3e2, null, false]}}, [[], {}]], "domain": "x"}'],
    ['{"map": [{"service": "a", "service2": "b"}, {"service": "a"}], "domain": "x"}'],
    ['{"domian": "x"}'],
    ['[]'],
    ['"a string"'],
    ['42'],
  ])('reads %s as the YAML parser does', (text) => {
    let json: unknown;
    try {
      json = parseJsonConfigFile(text, 'f.json', KEYS);
    } catch (err) {
      json = (err as Error).message;
    }
    expect(json).toEqual(viaYaml(text));
  });

  it.each([
    ['{"domain": "a", "domain": "b"}'],
    ['{"map": [{"service": "a", "service": "b"}], "domain": "x"}'],
    ['{"domain": "a", "d\\u006fmain": "b"}'],
  ])('leaves JSON with a key twice in one object to the YAML parser, which refuses it: %s', (text) => {
    expect(parseJsonConfigFile(text, 'f.json', KEYS)).toBeUndefined();
    expect(() => parseConfigFile(text, 'f.json', KEYS)).toThrowError(/cannot read config file "f.json"/);
  });

  it.each([['domain: env1.skydns.local\n'], [''], ['{"domain": "x",}'], ["{'domain': 'x'}"], ['# comment\n{"domain": "x"}']])('leaves what is not plain JSON to the YAML parser: %j', (text) => {
    expect(parseJsonConfigFile(text, 'f.yaml', KEYS)).toBeUndefined();
  });
});
