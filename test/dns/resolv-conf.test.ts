import { describe, expect, it } from 'vitest';
import { parseResolvConf, stubResolvConf } from '../../src/dns/resolv-conf.js';

describe('parseResolvConf', () => {
  it('reads nameservers, search domains and options, ignoring comments and junk', () => {
    const conf = parseResolvConf(
      [
        '# generated',
        'nameserver 10.0.0.2',
        'nameserver 2001:db8::53 ; comment',
        'nameserver not-an-ip',
        'search env1.skydns.local skydns.local',
        'options ndots:2 timeout:1',
        'sortlist 10.0.0.0/8',
      ].join('\n'),
    );
    expect(conf).toEqual({
      nameservers: [
        { host: '10.0.0.2', port: 53 },
        { host: '2001:db8::53', port: 53 },
      ],
      search: ['env1.skydns.local', 'skydns.local'],
      options: ['ndots:2 timeout:1'],
    });
  });

  it('takes the last of search and domain, as libc does', () => {
    expect(parseResolvConf('search a.b\ndomain c.d\n').search).toEqual(['c.d']);
  });

  it('gives nothing for an empty file', () => {
    expect(parseResolvConf('')).toEqual({ nameservers: [], search: [], options: [] });
  });
});

describe('stubResolvConf', () => {
  it('points at the stub, searches the environment, keeps options', () => {
    const old = parseResolvConf('nameserver 10.0.0.2\nsearch corp.example\noptions ndots:2 timeout:1\noptions rotate\n');
    expect(stubResolvConf(old, '127.0.0.1', ['env1.skydns.local.'])).toBe(
      [
        '# written by srvlink run --write-resolv-conf: names go through its DNS stub',
        'nameserver 127.0.0.1',
        'search env1.skydns.local',
        'options ndots:2 timeout:1',
        'options rotate',
        '',
      ].join('\n'),
    );
  });

  it('round-trips through the parser', () => {
    const text = stubResolvConf(parseResolvConf(''), '127.0.0.1', ['env1.skydns.local']);
    expect(parseResolvConf(text)).toEqual({ nameservers: [{ host: '127.0.0.1', port: 53 }], search: ['env1.skydns.local'], options: [] });
  });
});
