import { describe, expect, it } from 'vitest';
import { parseHealthCheck, type CheckResult } from '../../src/registry/health-check.js';
import { connectionWarnings, startZooKeeper, waitForQuorum, ZOOKEEPER_TIMEOUT } from '../helpers/zookeeper.js';
import { waitFor } from '../helpers/wait-for.js';

const TIMEOUT = 800;

/** Run a check and time it. */
async function timed(spec: string, options: { send?: string; expect?: string } = {}): Promise<CheckResult & { ms: number }> {
  const started = performance.now();
  const result = await parseHealthCheck(spec, { timeout: TIMEOUT, ...options }).run();
  return { ...result, ms: performance.now() - started };
}

describe('zookeeper:// check against ZooKeeper (Debian zookeeperd)', () => {
  it(
    'passes while serving; fails without quorum, frozen and stopped; the server logs no warning',
    async () => {
      // Two JVMs at once: a standalone server, and a member whose ensemble never forms.
      const [[serving], [lonely]] = await Promise.all([startZooKeeper(), startZooKeeper({ servers: 1, absent: 1 })]);
      if (!serving || !lonely) throw new Error('servers missing');
      await waitForQuorum([serving]);
      const url = `zookeeper://127.0.0.1:${serving.clientPort}`;

      const passed = await timed(url);
      expect(passed).toMatchObject({ ok: true, reason: 'mode standalone' });
      // The generic form does the same with send/expect.
      expect(await timed(`tcp://127.0.0.1:${serving.clientPort}`, { send: 'srvr\\n', expect: '^Mode: (leader|follower|standalone)' })).toMatchObject({ ok: true });
      expect(await timed(`tcp://127.0.0.1:${serving.clientPort}`, { send: 'srvr', expect: '^Mode: leader' })).toMatchObject({
        ok: false,
        reason: expect.stringContaining('answer did not match /^Mode: leader/m'),
      });

      // Up (it answers four-letter words) but never serving: no quorum.
      await waitFor(async () => (await lonely.fourLetter('srvr')).includes('not currently serving'), { what: 'the lonely member to answer', timeout: ZOOKEEPER_TIMEOUT, interval: 200 });
      expect(await timed(`zookeeper://127.0.0.1:${lonely.clientPort}`)).toMatchObject({ ok: false, reason: 'not serving requests (no quorum)' });

      // Frozen: the kernel still completes the handshake; the timeout covers the exchange.
      await serving.kill('SIGSTOP');
      const frozen = await timed(url);
      expect(frozen).toMatchObject({ ok: false, reason: `timed out after ${TIMEOUT} ms waiting for the answer` });
      expect(frozen.ms).toBeGreaterThanOrEqual(TIMEOUT - 50);
      expect(frozen.ms).toBeLessThan(TIMEOUT + 3000);
      await serving.kill('SIGCONT');
      await waitFor(async () => (await timed(url)).ok, { what: 'the thawed server to pass again', interval: 100 });

      // Everything above made the servers log INFO lines only about our connections.
      expect(connectionWarnings(serving.log())).toEqual([]);
      expect(connectionWarnings(lonely.log())).toEqual([]);
      // ...whereas a bare connect-and-close (tcp:// without send/expect) makes it log a warning with a stack trace.
      expect(await timed(`tcp://127.0.0.1:${serving.clientPort}`)).toMatchObject({ ok: true, reason: 'connected' });
      await waitFor(() => connectionWarnings(serving.log()).length > 0, { what: 'the warning a bare tcp check causes' });

      await serving.kill('SIGKILL');
      const stopped = await timed(url);
      expect(stopped).toMatchObject({ ok: false, reason: expect.stringContaining('ECONNREFUSED') });
      expect(stopped.ms).toBeLessThan(TIMEOUT);
    },
    ZOOKEEPER_TIMEOUT * 2,
  );
});
