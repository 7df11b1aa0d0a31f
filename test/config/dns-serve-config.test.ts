import { describe, expect, it } from 'vitest';
import { parseDnsServeConfig } from '../../src/config/dns-serve-config.js';

describe('parseDnsServeConfig', () => {
  it('fills in the documented defaults', () => {
    expect(parseDnsServeConfig({})).toEqual({ listen: { host: '127.0.0.1', port: 53 }, zones: ['skydns.local.'], prefix: '/skydns', records: undefined, dnsFastPath: 'auto' });
  });

  it('normalises zones (case, trailing dot, duplicates, commas from the environment) and the prefix', () => {
    const config = parseDnsServeConfig({ zone: ['SkyDNS.Local', 'skydns.local.,other.zone'], prefix: '/custom/', listen: '[::1]:5353' });
    expect(config).toMatchObject({ zones: ['skydns.local.', 'other.zone.'], prefix: '/custom', listen: { host: '::1', port: 5353 } });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each([
    [{ zone: ['a..b'] }, /invalid --zone "a\.\.b"/],
    [{ prefix: '/a//b' }, /invalid --prefix "\/a\/\/b"/],
    [{ listen: '127.0.0.1:http' }, /invalid port "http" in --listen/],
  ])('refuses %j', (input, message) => {
    expect(() => parseDnsServeConfig(input)).toThrowError(message);
  });

  it('names the environment variable a bad value came from', () => {
    expect(() => parseDnsServeConfig({ zone: 'bad zone' }, { zone: { flag: '--zone', env: 'SRVLINK_ZONE', from: 'env' } })).toThrowError(
      'invalid SRVLINK_ZONE (for --zone) "bad zone": expected a domain name like skydns.local.',
    );
  });
});
