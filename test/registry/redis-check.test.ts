import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHealthCheck, type CheckResult } from '../../src/registry/health-check.js';
import { startRedis } from '../helpers/redis-server.js';
import { tempDir } from '../helpers/temp-dir.js';
import { unusedPort } from '../helpers/tcp-backends.js';

const TIMEOUT = 800;

async function timed(spec: string): Promise<CheckResult & { ms: number }> {
  const started = performance.now();
  const result = await parseHealthCheck(spec, { timeout: TIMEOUT }).run();
  return { ...result, ms: performance.now() - started };
}

describe('redis:// check against redis-server', () => {
  it('PING → PONG passes; frozen and stopped fail within the timeout', async () => {
    const redis = await startRedis();
    const url = `redis://127.0.0.1:${redis.port}`;
    expect(await timed(url)).toMatchObject({ ok: true, reason: 'PONG' });

    await redis.kill('SIGSTOP');
    const frozen = await timed(url);
    expect(frozen).toMatchObject({ ok: false, reason: `timed out after ${TIMEOUT} ms waiting for the answer` });
    expect(frozen.ms).toBeLessThan(TIMEOUT + 3000);
    await redis.kill('SIGCONT');
    expect(await timed(url)).toMatchObject({ ok: true });

    await redis.kill('SIGKILL');
    const stopped = await timed(url);
    expect(stopped).toMatchObject({ ok: false, reason: expect.stringContaining('ECONNREFUSED') });
    expect(stopped.ms).toBeLessThan(TIMEOUT);
  });

  it('AUTH from a password file; a wrong or missing password fails, and the password is never in a reason', async () => {
    const password = 'pa ss:w0rd-with spaces';
    const redis = await startRedis({ password });
    const startLog = redis.log().length;
    const dir = tempDir();
    const good = join(dir, 'good');
    const bad = join(dir, 'bad');
    writeFileSync(good, `${password}\n`);
    writeFileSync(bad, 'not-it\n');

    const passing = parseHealthCheck(`redis://127.0.0.1:${redis.port}?password-file=${good}`, { timeout: TIMEOUT });
    expect(passing.description).not.toContain(password);
    expect(await passing.run()).toEqual({ ok: true, reason: 'PONG' });

    const wrong = await timed(`redis://127.0.0.1:${redis.port}?password-file=${bad}`);
    expect(wrong).toMatchObject({ ok: false, reason: expect.stringMatching(/^AUTH refused: "-WRONGPASS/) });
    expect(wrong.reason).not.toContain('not-it');

    // No AUTH against a server that wants one: the server says so, the check fails.
    expect(await timed(`redis://127.0.0.1:${redis.port}`)).toMatchObject({ ok: false, reason: expect.stringMatching(/^PING answered "-NOAUTH/) });

    const missing = await timed(`redis://127.0.0.1:${redis.port}?password-file=${join(dir, 'absent')}`);
    expect(missing).toMatchObject({ ok: false, reason: expect.stringContaining(`cannot read password file "${join(dir, 'absent')}"`) });

    // The right password from the user's point of view, sent to the wrong kind of server: no PONG.
    const elsewhere = await timed(`redis://127.0.0.1:${await unusedPort()}`);
    expect(elsewhere.ok).toBe(false);
    expect(redis.log().slice(startLog)).not.toMatch(/# (WARNING|Error)|Protocol error/i);
  });
});
