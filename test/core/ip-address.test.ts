import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalAddress, formatIpv6, ipv6Bytes, mappedIpv4 } from '../../src/core/ip-address.js';

describe('canonicalAddress', () => {
  it.each([
    ['::1', '::1'],
    ['0:0::1', '::1'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['fe80::1%eth0', 'fe80::1%eth0'],
    ['10.0.0.1', '10.0.0.1'],
    ['Example.COM', 'example.com'],
  ])('%s → %s', (address, canonical) => expect(canonicalAddress(address)).toBe(canonical));

  it('writes every address as the WHATWG URL parser does (RFC 5952)', () => {
    const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
        const text = groups.map((g) => g.toString(16)).join(':');
        expect(canonicalAddress(text)).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
      }),
    );
  });
});

describe('ipv6Bytes', () => {
  it.each([
    ['::1', [...new Array<number>(15).fill(0), 1]],
    ['::ffff:1.2.3.4', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]],
  ])('%s', (address, bytes) => expect(Array.from(ipv6Bytes(address) ?? [])).toEqual(bytes));

  it.each(['10.0.0.1', 'example.com', 'fe80::1%eth0', ''])('%j is not an IPv6 address', (address) => expect(ipv6Bytes(address)).toBeUndefined());

  it('formats back to an address that reads as the same bytes', () => {
    const bytes = ipv6Bytes('2001:db8::ff00:42:8329');
    expect(bytes).toBeDefined();
    expect(formatIpv6(bytes as Uint8Array)).toBe('2001:db8::ff00:42:8329');
  });
});

describe('mappedIpv4', () => {
  it.each([
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::ffff:a00:1', '10.0.0.1'],
    ['0:0:0:0:0:ffff:c0a8:1', '192.168.0.1'],
    ['::1', undefined],
    ['::10.0.0.1', undefined],
    ['10.0.0.1', undefined],
  ])('%s → %s', (address, ipv4) => expect(mappedIpv4(address)).toBe(ipv4));
});
