import { describe, expect, it } from 'vitest';
import { parseResolveConfig } from '../../src/config/resolve-config.js';

describe('parseResolveConfig', () => {
  it('turns the service into its SRV name and servers into host:port', () => {
    expect(parseResolveConfig('zookeeper', { domain: 'env1.skydns.local', clusterDns: ['127.0.0.1:5353,10.0.0.1'], timeout: '500ms' })).toEqual({
      service: 'zookeeper',
      srvName: '_zookeeper._tcp.env1.skydns.local.',
      domain: 'env1.skydns.local',
      clusterDns: [
        { host: '127.0.0.1', port: 5353 },
        { host: '10.0.0.1', port: 53 },
      ],
      timeout: 500,
      json: false,
    });
  });

  it.each([
    ['zookeeper', {}, /no --domain/],
    ['_x._tcp.example', { timeout: '0s' }, /invalid --timeout "0s": must be more than 0/],
    ['_x._tcp.example', { clusterDns: ['::1:99999'] }, /in --cluster-dns "::1:99999"/],
  ])('refuses %s %j', (service, input, message) => {
    expect(() => parseResolveConfig(service, input)).toThrowError(message);
  });
});
