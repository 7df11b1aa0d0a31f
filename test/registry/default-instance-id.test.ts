import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isHostLabel } from '../../src/core/dns-name.js';
import { defaultInstanceId } from '../../src/registry/default-instance-id.js';

describe('defaultInstanceId', () => {
  it.each([
    ['web-7f9c', 31001, 'web-7f9c-31001'],
    ['Web_7F9C', 31001, 'web-7f9c-31001'],
    ['web1.example.com', 8080, 'web1-example-com-8080'],
    ['-odd--name-', 80, 'odd-name-80'],
    ['---', 80, 'srvlink-80'],
    ['', 80, 'srvlink-80'],
    ['héllo wörld', 1, 'h-llo-w-rld-1'],
    ['a'.repeat(80), 65535, `${'a'.repeat(57)}-65535`],
    [`${'a'.repeat(57)}-bbb`, 65535, `${'a'.repeat(57)}-65535`],
    [`${'a'.repeat(56)}-bbb`, 65535, `${'a'.repeat(56)}-65535`],
  ])('%s and port %i → %s', (hostname, port, id) => {
    expect(defaultInstanceId(hostname, port)).toBe(id);
  });

  it('is always a DNS label that ends with the port', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), fc.integer({ min: 0, max: 65535 }), (hostname, port) => {
        const id = defaultInstanceId(hostname, port);
        expect(isHostLabel(id)).toBe(true);
        expect(id.endsWith(`-${port}`)).toBe(true);
        expect(id).toBe(id.toLowerCase());
      }),
    );
  });
});
