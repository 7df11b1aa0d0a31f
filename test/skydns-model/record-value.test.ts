import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { parseSkydnsRecord } from '../../src/skydns-model/skydns-record.js';
import { recordValue, recordValueProblem, type RecordValueOptions } from '../../src/skydns-model/record-value.js';

describe('recordValue', () => {
  it.each<[RecordValueOptions, string]>([
    [{ host: '10.0.0.5', port: 31001 }, '{"host":"10.0.0.5","port":31001,"priority":10,"weight":100}'],
    [{ host: '10.0.0.5', port: 31001, ttl: 10 }, '{"host":"10.0.0.5","port":31001,"priority":10,"weight":100,"ttl":10}'],
    [{ host: 'web1.example.com', port: 80, priority: 0, weight: 0 }, '{"host":"web1.example.com","port":80,"priority":0,"weight":0}'],
    [{ host: 'fd00::5', port: 65535, priority: 65535, weight: 65535, ttl: 1 }, '{"host":"fd00::5","port":65535,"priority":65535,"weight":65535,"ttl":1}'],
  ])('%j → %s', (options, json) => {
    expect(JSON.stringify(recordValue(options))).toBe(json);
  });

  it.each<[RecordValueOptions, string]>([
    [{ host: '', port: 80 }, 'invalid host ""'],
    [{ host: 'not a host', port: 80 }, 'invalid host "not a host"'],
    [{ host: '10.0.0.256', port: 80 }, 'invalid host "10.0.0.256"'],
    [{ host: 'fe80::1%eth0', port: 80 }, 'invalid host "fe80::1%eth0"'],
    [{ host: '10.0.0.5', port: 0 }, 'invalid port "0": expected a whole number from 1 to 65535'],
    [{ host: '10.0.0.5', port: 65536 }, 'invalid port "65536"'],
    [{ host: '10.0.0.5', port: 1.5 }, 'invalid port "1.5"'],
    [{ host: '10.0.0.5', port: 80, priority: -1 }, 'invalid priority "-1"'],
    [{ host: '10.0.0.5', port: 80, weight: 70000 }, 'invalid weight "70000"'],
    [{ host: '10.0.0.5', port: 80, ttl: 0 }, 'invalid ttl "0"'],
  ])('%j → InvalidArgumentError %s, the problem named by field', (options, message) => {
    expect(() => recordValue(options)).toThrow(InvalidArgumentError);
    expect(() => recordValue(options)).toThrow(message);
    const bad = recordValueProblem(options);
    expect(`invalid ${bad?.field} "${bad?.value}": ${bad?.problem}`).toContain(message);
  });

  it('reads back through the SkyDNS record model with the same fields', () => {
    const value = recordValue({ host: '10.0.0.5', port: 31001, ttl: 10 });
    const record = parseSkydnsRecord('/skydns/local/_tcp/_web/w1', JSON.stringify(value));
    expect(record).toMatchObject({ host: '10.0.0.5', hostKind: 'ipv4', port: 31001, priority: 10, weight: 100, ttl: 10 });
  });
});
