import { describe, expect, it } from 'vitest';
import { formatHostPort, parseHostPort, parseServerAddress } from '../../src/core/host-port.js';

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:53', undefined, { host: '127.0.0.1', port: 53 }],
    ['127.0.0.1', 53, { host: '127.0.0.1', port: 53 }],
    ['dns.example:5353', 53, { host: 'dns.example', port: 5353 }],
    ['[::1]:5353', undefined, { host: '::1', port: 5353 }],
    ['::1', 53, { host: '::1', port: 53 }],
    ['[fe80::1]', 53, { host: 'fe80::1', port: 53 }],
    ['0.0.0.0:0', undefined, { host: '0.0.0.0', port: 0 }],
    ['project_web_1:8080', undefined, { host: 'project_web_1', port: 8080 }],
  ])('parses %s', (text, defaultPort, expected) => {
    expect(parseHostPort(text, '--listen', defaultPort)).toEqual(expected);
  });

  it.each([
    ['', 53, /invalid --x "": empty/],
    ['127.0.0.1', undefined, /missing port, expected HOST:PORT/],
    ['127.0.0.1:65536', 53, /invalid port "65536"/],
    ['127.0.0.1:-1', 53, /invalid port "-1"/],
    ['[127.0.0.1]:53', 53, /is not an IPv6 address/],
    ['bad host!:53', 53, /neither an IP address nor a host name/],
    ['10.0.0.256:53', 53, /"10.0.0.256" is neither an IP address nor a host name/],
    ['-dns.example:53', 53, /neither an IP address nor a host name/],
    [':53', 53, /missing host/],
  ])('refuses %s', (text, defaultPort, message) => {
    expect(() => parseHostPort(text, '--x', defaultPort)).toThrowError(message);
  });

  it.each([
    [{ host: '::1', port: 53 }, '[::1]:53'],
    [{ host: '10.0.0.1', port: 8080 }, '10.0.0.1:8080'],
  ])('formats %j as %s, which parses back', (hostPort, text) => {
    expect(formatHostPort(hostPort)).toBe(text);
    expect(parseHostPort(text, 'x')).toEqual(hostPort);
  });
});

describe('parseServerAddress', () => {
  it.each([
    ['10.0.0.2', { host: '10.0.0.2', port: 53 }],
    ['[::1]:5353', { host: '::1', port: 5353 }],
  ])('parses %s', (text, expected) => expect(parseServerAddress(text, '--upstream', 53)).toEqual(expected));

  it.each([
    ['dns.example', 'invalid --upstream "dns.example": "dns.example" is not an IP address, expected IP[:PORT]'],
    ['10.0.0.2:0', 'invalid --upstream "10.0.0.2:0": port 0 cannot be sent to, expected IP[:PORT]'],
  ])('refuses %s', (text, message) => expect(() => parseServerAddress(text, '--upstream', 53)).toThrowError(message));
});
