import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { redactUrl } from '../../src/core/redact-url.js';

describe('redactUrl', () => {
  it.each([
    ['http://bob:s3cret@10.0.0.5:2379', 'http://10.0.0.5:2379'],
    ['https://token@etcd.example:2379/', 'https://etcd.example:2379/'],
    ['etcd http://a:b@h1:2379,http://c:d@h2:2379', 'etcd http://h1:2379,http://h2:2379'],
    ['invalid --etcd "http://bob:pw@localhost": expected', 'invalid --etcd "http://localhost": expected'],
    ['Name resolution failed for target dns:bob:s3cret@127.0.0.1:1', 'Name resolution failed for target dns:127.0.0.1:1'],
    ['http://10.0.0.5:2379', 'http://10.0.0.5:2379'],
    ['no url here, user@example.com', 'no url here, user@example.com'],
    ['{"host":"a@b"}', '{"host":"a@b"}'],
    ['error: bob@host said no', 'error: bob@host said no'],
  ])('%s → %s', (text, redacted) => {
    expect(redactUrl(text)).toBe(redacted);
  });

  it('is applied by the logger to the message, every string field and error messages', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (line) => lines.push(line) });
    log.warn('cannot reach http://bob:s3cret@h:2379', { endpoints: ['http://bob:s3cret@h:2379'], error: new Error('via http://bob:s3cret@h:2379') });
    expect(lines.join('')).not.toContain('s3cret');
    expect(lines.join('')).toContain('http://h:2379');
  });
});
