import { describe, expect, it } from 'vitest';
import { STUB_RESOLV_CONF_HEADER, originalText, parseResolvConf, stubResolvConf } from '../../src/dns/resolv-conf.js';

const ORIGINAL = '# from the runtime\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example\noptions ndots:2 timeout:1\n';

describe('resolv.conf across restarts', () => {
  it('keeps the original in comments, and reads it back from a file it wrote', () => {
    const written = stubResolvConf(parseResolvConf(ORIGINAL), '127.0.0.1', ['env1.skydns.local.'], ORIGINAL);
    expect(written).toBe(
      [
        STUB_RESOLV_CONF_HEADER,
        'nameserver 127.0.0.1',
        'search env1.skydns.local',
        'options ndots:2 timeout:1',
        '# srvlink original: # from the runtime',
        '# srvlink original: nameserver 10.0.0.2',
        '# srvlink original: nameserver 10.0.0.3',
        '# srvlink original: search corp.example',
        '# srvlink original: options ndots:2 timeout:1',
        '',
      ].join('\n'),
    );
    // What libc reads: only the stub.
    expect(parseResolvConf(written).nameservers).toEqual([{ host: '127.0.0.1', port: 53 }]);
    // The second start: the same original, byte for byte, and its resolvers.
    expect(originalText(written)).toBe(ORIGINAL);
    expect(parseResolvConf(originalText(written)).nameservers.map((n) => n.host)).toEqual(['10.0.0.2', '10.0.0.3']);
    // Written again from what it read back: the same file (a third start is like the second).
    const again = stubResolvConf(parseResolvConf(originalText(written)), '127.0.0.1', ['env1.skydns.local'], originalText(written));
    expect(again).toBe(written);
  });

  it.each([
    ['a file srvlink did not write', ORIGINAL, ORIGINAL],
    ['an empty file', '', ''],
    ['a file without a final newline', 'nameserver 10.0.0.2', 'nameserver 10.0.0.2\n'],
    ['a stub file with no original (the container had none)', `${STUB_RESOLV_CONF_HEADER}\nnameserver 127.0.0.1\n`, ''],
    ['a file that only mentions the header later', `nameserver 10.0.0.9\n${STUB_RESOLV_CONF_HEADER}\n`, `nameserver 10.0.0.9\n${STUB_RESOLV_CONF_HEADER}\n`],
  ])('originalText of %s', (_what, text, expected) => {
    const input = text === 'nameserver 10.0.0.2' ? stubResolvConf(parseResolvConf(text), '127.0.0.1', [], text) : text;
    expect(originalText(input)).toBe(expected);
  });
});
